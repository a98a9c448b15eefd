// A broken plugin: it registers a type named like a built-in one.
#include <sluice/plugin.hpp>

namespace {

class Nothing final : public sluice::TransformNode {
 public:
  void process(sluice::Record& record, sluice::Emitter& out) override { out.emit(std::move(record)); }
};

void register_nodes(sluice::PluginRegistrar& registrar) {
  sluice::NodeType t;
  t.name = "filter";
  t.kind = sluice::NodeKind::transform;
  t.summary = "a second filter";
  t.ports = {{"in", sluice::PortDirection::input, "records"}, {"out", sluice::PortDirection::output, "records"}};
  t.factory = [](const sluice::NodeContext&) -> std::unique_ptr<sluice::Node> { return std::make_unique<Nothing>(); };
  registrar.add(std::move(t));
}

}  // namespace

SLUICE_PLUGIN(register_nodes)
