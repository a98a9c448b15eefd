// Shared by the fuzz targets (tests/fuzz/fuzz_*.cpp). Each target defines LLVMFuzzerTestOneInput:
// tools/fuzz.sh links it with libFuzzer (clang), and the test suite links it with replay.cpp, which
// runs the committed corpus plus seeded mutations of it under the normal (and the ASan) build.
//
// A target returns normally for any input. A crash, a sanitizer report, a hang or a broken
// invariant (FUZZ_CHECK: aborts with the message) is a finding.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "sluice/diagnostics.hpp"
#include "sluice/node.hpp"
#include "sluice/pipeline.hpp"
#include "sluice/registry.hpp"

#define FUZZ_CHECK(cond, what)                                                                \
  do {                                                                                        \
    if (!(cond)) {                                                                            \
      std::fprintf(stderr, "fuzz invariant broken at %s:%d: %s\n", __FILE__, __LINE__, what); \
      std::abort();                                                                           \
    }                                                                                         \
  } while (0)

namespace sluice::fuzz {

inline const Registry& registry() {
  static const Registry r = [] {
    Registry reg;
    register_builtin_nodes(reg);
    return reg;
  }();
  return r;
}

// No environment variable is set: a pipeline's ${VAR:-default} takes its default.
inline LoadOptions load_options() {
  LoadOptions options;
  options.env = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
  return options;
}

// A pipeline of the target's own, whose nodes are made as a run makes them (outside a run: no
// state, no progress).
struct Pipeline {
  Plan plan;

  std::unique_ptr<Node> make(std::string_view id) const {
    for (const auto& n : plan.nodes) {
      if (n.id != id) continue;
      NodeContext context{n.id, n.config, n.where, plan.settings};
      auto node = n.type->factory(context);
      FUZZ_CHECK(node != nullptr, "a factory returned nothing");
      return node;
    }
    FUZZ_CHECK(false, "no such node in the target's pipeline");
    return nullptr;
  }
};

inline Pipeline load(std::string_view yaml) {
  Diagnostics diags;
  auto plan = load_pipeline_text(yaml, "fuzz.yaml", registry(), load_options(), diags);
  if (!plan) {
    std::fprintf(stderr, "the fuzz target's own pipeline is invalid:\n%s\n", diags.to_string().c_str());
    std::abort();
  }
  return Pipeline{std::move(*plan)};
}

// Counts what a transform emits and fails; every failure must say why.
class CountingEmitter final : public Emitter {
 public:
  void emit(Record&&, std::size_t) override { ++emitted; }
  void fail(Record&&, std::string message) override {
    FUZZ_CHECK(!message.empty(), "a record failed with an empty message");
    ++failed;
  }
  std::size_t emitted = 0;
  std::size_t failed = 0;
};

// Reads an input as a few values: bytes, then text up to a separator.
class Input {
 public:
  Input(const std::uint8_t* data, std::size_t size) : rest_(reinterpret_cast<const char*>(data), size) {}
  std::uint8_t byte() {
    if (rest_.empty()) return 0;
    const auto b = static_cast<std::uint8_t>(rest_.front());
    rest_.remove_prefix(1);
    return b;
  }
  // Up to the next '\n' (consumed), or the rest.
  std::string_view line() {
    const auto end = rest_.find('\n');
    const std::string_view out = rest_.substr(0, end);
    rest_.remove_prefix(end == std::string_view::npos ? rest_.size() : end + 1);
    return out;
  }
  std::string_view rest() const { return rest_; }

 private:
  std::string_view rest_;
};

}  // namespace sluice::fuzz
