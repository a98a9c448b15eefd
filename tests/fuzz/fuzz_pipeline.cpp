// Pipeline files: the YAML reader, the planner, every node type's schema, templates, selectors,
// expressions and edges. Any text is either a plan or errors, each with its file:line:col.
#include "fuzz.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace sluice;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  Diagnostics diags;
  const auto plan = load_pipeline_text(text, "fuzz.yaml", fuzz::registry(), fuzz::load_options(), diags);
  FUZZ_CHECK(plan.has_value() == diags.empty(), "a plan with errors, or neither a plan nor an error");
  for (const auto& d : diags.items()) {
    FUZZ_CHECK(!d.message.empty(), "an error without a message");
    FUZZ_CHECK(d.where.file == "fuzz.yaml", "an error that names another file");
    if (!d.where.known() || d.where.column <= 0) {
      std::fprintf(stderr, "error without a position: %s\n", d.to_string().c_str());
      FUZZ_CHECK(false, "an error without a line and column");
    }
  }
  (void)diags.to_string();
  return 0;
}
