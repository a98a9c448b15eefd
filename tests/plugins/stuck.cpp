// A plugin whose nodes get stuck in their own code, as a buggy plugin might: a transform, a source
// that ignores NodeContext::stop, a sink, and a sink's factory. Each creates the file `marker` when it gets stuck and
// then never returns, so that tests can check that a cancelled run still ends (abort_timeout).
#include <sluice/plugin.hpp>

#include <chrono>
#include <fstream>
#include <thread>

namespace {

using namespace sluice;

[[noreturn]] void stick(const std::string& marker) {
  std::ofstream(marker) << "stuck\n";
  while (true) std::this_thread::sleep_for(std::chrono::hours(1));
}

// Passes records on; gets stuck on the record whose `n` equals `at`.
class StuckTransform final : public TransformNode {
 public:
  StuckTransform(std::int64_t at, std::string marker) : at_(at), marker_(std::move(marker)) {}
  void process(Record& record, Emitter& out) override {
    const Value* n = record.get("n");
    if (n && n->as_int() && *n->as_int() == at_) stick(marker_);
    out.emit(std::move(record));
  }

 private:
  std::int64_t at_;
  std::string marker_;
};

// Emits records n = 1..count, then gets stuck instead of ending.
class StuckSource final : public SourceNode {
 public:
  StuckSource(std::int64_t count, std::string marker) : count_(count), marker_(std::move(marker)) {}
  bool next(Record& out) override {
    if (n_ == count_) stick(marker_);
    out.set("n", Value(++n_));
    return true;
  }

 private:
  std::int64_t count_, n_ = 0;
  std::string marker_;
};

// Gets stuck in its first write.
class StuckSink final : public SinkNode {
 public:
  explicit StuckSink(std::string marker) : marker_(std::move(marker)) {}
  void write(std::vector<Record>&) override { stick(marker_); }
  void close() override {}

 private:
  std::string marker_;
};

NodeType type(std::string name, NodeKind kind, std::vector<FieldSpec> fields, NodeFactory factory) {
  NodeType t;
  t.name = std::move(name);
  t.kind = kind;
  t.summary = "for tests: gets stuck in its own code";
  if (kind != NodeKind::source) t.ports.push_back({"in", PortDirection::input, "records"});
  if (kind != NodeKind::sink) t.ports.push_back({"out", PortDirection::output, "records"});
  fields.push_back(FieldSpec::string("marker", "file created when the node gets stuck").make_required());
  t.schema = Schema(std::move(fields));
  t.factory = std::move(factory);
  return t;
}

void register_nodes(PluginRegistrar& registrar) {
  registrar.add(type("test.stuck_transform", NodeKind::transform,
                     {FieldSpec::integer("at", "n to get stuck at").make_required()},
                     [](const NodeContext& ctx) -> std::unique_ptr<Node> {
                       return std::make_unique<StuckTransform>(ctx.config.integer("at"), ctx.config.string("marker"));
                     }));
  registrar.add(type("test.stuck_source", NodeKind::source,
                     {FieldSpec::integer("count", "records before").make_required()},
                     [](const NodeContext& ctx) -> std::unique_ptr<Node> {
                       return std::make_unique<StuckSource>(ctx.config.integer("count"), ctx.config.string("marker"));
                     }));
  registrar.add(type("test.stuck_sink", NodeKind::sink, {}, [](const NodeContext& ctx) -> std::unique_ptr<Node> {
    return std::make_unique<StuckSink>(ctx.config.string("marker"));
  }));
  // A sink whose factory never returns: stuck on the main thread while the run is set up.
  registrar.add(type("test.stuck_factory", NodeKind::sink, {},
                     [](const NodeContext& ctx) -> std::unique_ptr<Node> { stick(ctx.config.string("marker")); }));
}

}  // namespace

SLUICE_PLUGIN(register_nodes)
