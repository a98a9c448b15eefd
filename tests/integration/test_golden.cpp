// Golden diagnostics: every pipeline under tests/golden/ is invalid, and its exact diagnostics
// (text, line, column) are in the .expected file beside it. SLUICE_UPDATE_GOLDEN=1 rewrites them.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "../support.hpp"

using namespace sluice;
namespace fs = std::filesystem;

TEST_CASE("every invalid pipeline under tests/golden reports exactly its expected diagnostics", "[golden]") {
  fs::path dir = fs::path(SLUICE_SOURCE_DIR) / "tests" / "golden";
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() == ".yaml") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  REQUIRE(files.size() >= 10);
  const bool update = std::getenv("SLUICE_UPDATE_GOLDEN") != nullptr;
  for (const auto& file : files) {
    std::string display = "tests/golden/" + file.filename().string();
    LoadOptions options{{}, test::fixed_env({{"SLUICE_GOLDEN_FIELD", "title"}})};
    Diagnostics diags;
    auto plan = load_pipeline_text(test::read_file(file.string()), display, test::builtin_registry(), options, diags);
    fs::path expected_path = file;
    expected_path.replace_extension(".expected");
    INFO(display);
    CHECK_FALSE(plan.has_value());
    if (update) {
      test::write_file(expected_path.string(), diags.to_string());
      continue;
    }
    REQUIRE(fs::exists(expected_path));
    CHECK(diags.to_string() == test::read_file(expected_path.string()));
  }
}

TEST_CASE("every pipeline shipped under pipelines/ and bench/ is valid", "[golden]") {
  for (const char* sub : {"pipelines", "bench"}) {
    for (const auto& entry : fs::recursive_directory_iterator(fs::path(SLUICE_SOURCE_DIR) / sub)) {
      if (entry.path().extension() != ".yaml") continue;
      Diagnostics diags;
      LoadOptions options;
      // The runner sets SERVE_URL for pipelines with settings.serve, and PIPELINE_DIR.
      options.env = [dir = entry.path().parent_path().string()](const std::string& name) -> std::optional<std::string> {
        if (name == "SERVE_URL") return "http://127.0.0.1:8080";
        if (name == "PIPELINE_DIR") return dir;
        // Credentials a pipeline takes from the environment only, with no default in the file.
        if (name == "API_CLIENT_ID" || name == "API_CLIENT_SECRET") return "placeholder";
        return process_env()(name);
      };
      auto plan = load_pipeline_file(entry.path().string(), test::builtin_registry(), options, diags);
      INFO(entry.path().string() << "\n" << diags.to_string());
      CHECK(plan.has_value());
    }
  }
}
