// drop: discards what it receives, on purpose. For an output whose records nobody needs — a parse
// node used only for its links, the pages of a crawl that only downloads files — since an output
// left unconnected is an error (its records would be lost without a word).
#include "../builtin.hpp"

namespace sluice::nodes {
namespace {

class Drop final : public SinkNode {
 public:
  void write(std::vector<Record>& records) override { records.clear(); }
  void close() override {}
  bool keeps_records() const override { return false; }
};

}  // namespace

NodeType drop_type() {
  NodeType t;
  t.name = "drop";
  t.kind = NodeKind::sink;
  t.summary =
      "discards the records it receives: for an output whose records are not needed (a parse node's pages "
      "when only its links are)";
  t.ports = {{"in", PortDirection::input, "records to discard (counted in its stats)"}};
  t.schema = Schema();
  t.factory = [](const NodeContext&) -> std::unique_ptr<Node> { return std::make_unique<Drop>(); };
  t.example = R"(- id: discard
  type: drop)";
  return t;
}

}  // namespace sluice::nodes
