// limit: bounds the records in flight downstream of it (asyncio.Semaphore as a graph node).
#include "../builtin.hpp"

namespace sluice::nodes {

NodeType limit_type() {
  NodeType t;
  t.name = "limit";
  t.kind = NodeKind::limit;
  t.summary = "lets at most max_in_flight records (with everything derived from them) be in flight past it";
  t.ports = {
      {"in", PortDirection::input, "records to admit; they wait in order while the limit is full"},
      {"out", PortDirection::output, "admitted records, each holding one slot"},
  };
  t.schema = Schema({
      FieldSpec::integer("max_in_flight", "slots: records admitted and not yet released").make_required().at_least(1),
      FieldSpec::enumeration("release", {"done", "after_fetch"},
                             "done: a slot returns when the record and all records derived from it have left the "
                             "graph (stored, dropped, skipped); after_fetch: when the record leaves the next fetch")
          .with_default("done"),
  });
  t.factory = [](const NodeContext& ctx) -> std::unique_ptr<Node> {
    return std::make_unique<LimitNode>(ctx.config.integer("max_in_flight"),
                                       ctx.config.string("release") == "after_fetch");
  };
  t.example = R"(- id: polite
  type: limit
  max_in_flight: 16)";
  return t;
}

}  // namespace sluice::nodes
