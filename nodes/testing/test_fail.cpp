// test.fail: passes records through and fails on a chosen one. For tests of failure handling.
#include <thread>

#include "../builtin.hpp"

namespace sluice::nodes {
namespace {

class FailOn final : public TransformNode {
 public:
  FailOn(std::string field, std::string equals, std::string message, std::chrono::nanoseconds delay)
      : field_(std::move(field)), equals_(std::move(equals)), message_(std::move(message)), delay_(delay) {}

  void process(Record& record, Emitter& out) override {
    const Value* v = record.get(field_);
    if (v && v->to_text() == equals_) {
      // Simulates work in progress when the failure happens; a test-only node may sleep.
      if (delay_.count() > 0) std::this_thread::sleep_for(delay_);
      out.fail(std::move(record), message_);
      return;
    }
    out.emit(std::move(record));
  }

 private:
  std::string field_;
  std::string equals_;
  std::string message_;
  std::chrono::nanoseconds delay_;
};

}  // namespace

NodeType test_fail_type() {
  NodeType t;
  t.name = "test.fail";
  t.kind = NodeKind::transform;
  t.summary = "for tests: passes records through and fails on the record whose field equals a value";
  t.ports = transform_ports();
  t.schema = Schema({
      FieldSpec::string("field", "the field to look at").with_default("n"),
      FieldSpec::string("equals", "fail on the record whose field has this text").make_required(),
      FieldSpec::string("message", "the error message").with_default("injected failure"),
      FieldSpec::duration("delay", "time spent on the failing record before failing").with_default("0s"),
  });
  t.factory = [](const NodeContext& ctx) -> std::unique_ptr<Node> {
    const Config& c = ctx.config;
    return std::make_unique<FailOn>(c.string("field"), c.string("equals"), c.string("message"), c.duration("delay"));
  };
  t.example = R"(- id: boom
  type: test.fail
  equals: 42)";
  return t;
}

}  // namespace sluice::nodes
