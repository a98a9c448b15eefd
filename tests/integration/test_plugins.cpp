// Plugin node types: the example plugin loaded for real, and broken plugins refused with exact
// messages.
#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <filesystem>

#include "../support.hpp"
#include "sluice/plugin.hpp"

using namespace sluice;
using test::sluice_cli;
using test::TempDir;

namespace {

std::string plugin(const std::string& name) {
  return std::string(SLUICE_PLUGIN_DIR) + "/" + name + ".so";
}

}  // namespace

TEST_CASE("the example plugin adds transform.slugify, loaded from a pipeline's plugins list", "[plugin]") {
  TempDir dir;
  test::write_file(dir.file("p.yaml"), fmt::format(R"(pipeline: slugs
plugins: [{}]
nodes:
  - {{id: src, type: source.list, urls: ["Blue Widget (XL)!", "Tea & Biscuits"], field: name}}
  - {{id: slug, type: transform.slugify, max_length: 12}}
  - {{id: out, type: sink.jsonl, path: {}}}
edges:
  - src -> slug -> out
)",
                                                   plugin("sluice_slugify"), dir.file("out.jsonl")));
  auto r = sluice_cli(dir, {"run", "-q", dir.file("p.yaml")});
  INFO(r.err);
  REQUIRE(r.code == 0);
  CHECK(test::read_file(dir.file("out.jsonl")) ==
        "{\"name\":\"Blue Widget (XL)!\",\"slug\":\"blue-widget\"}\n{\"name\":\"Tea & "
        "Biscuits\",\"slug\":\"tea-biscuits\"}\n");
  auto described = sluice_cli(dir, {"describe", "transform.slugify", "--plugin", plugin("sluice_slugify")});
  CHECK(described.code == 0);
  CHECK_THAT(described.out, Catch::Contains("max_length") && Catch::Contains("default: 80"));

  // The same library named again — by --plugin, and through a symbolic link in the list — is
  // loaded once. Before, it was refused as registering its own types a second time.
  std::filesystem::create_symlink(plugin("sluice_slugify"), dir.file("link.so"));
  std::string text = test::read_file(dir.file("p.yaml"));
  text.replace(text.find("plugins: ["), 10, "plugins: [link.so, ");
  test::write_file(dir.file("p.yaml"), text);
  auto twice = sluice_cli(dir, {"run", "-q", "--plugin", plugin("sluice_slugify"), dir.file("p.yaml")});
  INFO(twice.err);
  CHECK(twice.code == 0);
  CHECK(test::read_file(dir.file("out.jsonl")) ==
        "{\"name\":\"Blue Widget (XL)!\",\"slug\":\"blue-widget\"}\n{\"name\":\"Tea & "
        "Biscuits\",\"slug\":\"tea-biscuits\"}\n");
}

TEST_CASE("broken plugins are refused with messages that say why", "[plugin]") {
  TempDir dir;
  SECTION("a plugin without the entry point") {
    auto r = sluice_cli(dir, {"nodes", "--plugin", plugin("test_plugin_missing_entry")});
    CHECK(r.code == 2);
    CHECK(r.err == fmt::format("sluice: error: plugin '{}': no entry point 'sluice_register_nodes' (declare the "
                               "plugin with SLUICE_PLUGIN from <sluice/plugin.hpp>)\n",
                               plugin("test_plugin_missing_entry")));
  }
  SECTION("a plugin built with another ABI names both sides") {
    auto r = sluice_cli(dir, {"nodes", "--plugin", plugin("test_plugin_abi_mismatch")});
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Catch::StartsWith(fmt::format(
                          "sluice: error: plugin '{}': ABI mismatch: the plugin was built with sluice ABI 99, g++ "
                          "9.9.9, libstdc++ 20190101, oneTBB interface 11000, Record of 8 bytes; this sluice was "
                          "built with sluice ABI {}, g++ ",
                          plugin("test_plugin_abi_mismatch"), sluice::kPluginAbiVersion)));
  }
  SECTION("a plugin that registers a type name that exists") {
    auto r = sluice_cli(dir, {"nodes", "--plugin", plugin("test_plugin_duplicate_type")});
    CHECK(r.code == 2);
    CHECK(r.err == fmt::format("sluice: error: plugin '{}': node type 'filter' is already registered (built in)\n",
                               plugin("test_plugin_duplicate_type")));
  }
  SECTION("a pipeline's plugin error points at its line and column") {
    test::write_file(dir.file("p.yaml"),
                     fmt::format("pipeline: x\nplugins:\n  - {}\nnodes: []\n", plugin("test_plugin_duplicate_type")));
    auto r = sluice_cli(dir, {"validate", dir.file("p.yaml")});
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Catch::StartsWith(fmt::format("{}:3:5: error: plugin '{}': node type 'filter' is already "
                                                    "registered (built in)",
                                                    dir.file("p.yaml"), plugin("test_plugin_duplicate_type"))));
  }
  SECTION("a file that is not a plugin") {
    test::write_file(dir.file("junk.so"), "not a library");
    auto r = sluice_cli(dir, {"nodes", "--plugin", dir.file("junk.so")});
    CHECK(r.code == 2);
    CHECK_THAT(r.err,
               Catch::StartsWith(fmt::format("sluice: error: plugin '{}': cannot load it: ", dir.file("junk.so"))));
  }
}
