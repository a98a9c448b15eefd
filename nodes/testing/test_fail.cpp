// test.fail: passes records through and fails on a chosen one. For tests of failure handling.
#include <optional>
#include <thread>

#include "sluice/template.hpp"

#include "../builtin.hpp"

namespace sluice::nodes {
namespace {

class FailOn final : public TransformNode {
 public:
  FailOn(std::string field, std::optional<std::string> equals, FieldTemplate message, std::chrono::nanoseconds delay)
      : field_(std::move(field)), equals_(std::move(equals)), message_(std::move(message)), delay_(delay) {}

  void process(Record& record, Emitter& out) override {
    const Value* v = record.get(field_);
    if (!equals_ || (v && v->to_text() == *equals_)) {
      // Simulates work in progress when the failure happens; a test-only node may sleep.
      if (delay_.count() > 0) std::this_thread::sleep_for(delay_);
      std::string message = message_.render(record);
      out.fail(std::move(record), std::move(message));
      return;
    }
    out.emit(std::move(record));
  }

 private:
  std::string field_;
  std::optional<std::string> equals_;
  FieldTemplate message_;
  std::chrono::nanoseconds delay_;
};

}  // namespace

NodeType test_fail_type() {
  NodeType t;
  t.name = "test.fail";
  t.kind = NodeKind::transform;
  t.summary = "for tests: passes records through and fails those whose field equals a value (every record without it)";
  t.ports = transform_ports();
  t.schema = Schema(
      {
          FieldSpec::string("field", "the field to look at").with_default("n"),
          FieldSpec::string("equals", "fail the records whose field has this text; without it, every record"),
          FieldSpec::string("message", "the error message, a template of the record's fields ({n})")
              .with_default("injected failure"),
          FieldSpec::duration("delay", "time spent on the failing record before failing").with_default("0s"),
      },
      [](const Config& c, const Location&, Diagnostics& diags) {
        std::string error;
        if (!FieldTemplate::compile(c.string("message"), &error)) diags.error(c.where("message"), "message: " + error);
      });
  t.factory = [](const NodeContext& ctx) -> std::unique_ptr<Node> {
    const Config& c = ctx.config;
    std::optional<std::string> equals;
    if (c.has("equals")) equals = c.string("equals");
    return std::make_unique<FailOn>(c.string("field"), std::move(equals), *FieldTemplate::compile(c.string("message")),
                                    c.duration("delay"));
  };
  t.example = R"(- id: boom
  type: test.fail
  equals: 42)";
  return t;
}

}  // namespace sluice::nodes
