#include "sluice/registry.hpp"

#include <fmt/format.h>

#include <stdexcept>

namespace sluice {

std::string_view node_kind_name(NodeKind kind) {
  switch (kind) {
    case NodeKind::source:
      return "source";
    case NodeKind::transform:
      return "transform";
    case NodeKind::sink:
      return "sink";
    case NodeKind::async:
      return "async";
    case NodeKind::limit:
      return "limit";
  }
  return "?";
}

const PortSpec* NodeType::find_port(std::string_view port) const {
  for (const auto& p : ports) {
    if (p.name == port) return &p;
  }
  return nullptr;
}

std::vector<std::string> NodeType::port_names(PortDirection direction) const {
  std::vector<std::string> out;
  for (const auto& p : ports) {
    if (p.direction == direction) out.push_back(p.name);
  }
  return out;
}

int NodeType::output_index(std::string_view port) const {
  int index = 0;
  for (const auto& p : ports) {
    if (p.direction != PortDirection::output) continue;
    if (p.name == port) return index;
    ++index;
  }
  return -1;
}

void Registry::add(NodeType type, std::string origin) {
  if (type.name.empty()) throw std::invalid_argument("node type without a name");
  if (!type.factory) throw std::invalid_argument(fmt::format("node type '{}' has no factory", type.name));
  auto inputs = type.port_names(PortDirection::input);
  auto outputs = type.port_names(PortDirection::output);
  if (type.kind == NodeKind::source && !inputs.empty()) {
    throw std::invalid_argument(fmt::format("source node type '{}' declares input ports", type.name));
  }
  if (type.kind != NodeKind::source && inputs.size() != 1) {
    throw std::invalid_argument(fmt::format("node type '{}' must declare exactly one input port", type.name));
  }
  if (type.kind == NodeKind::sink && !outputs.empty()) {
    throw std::invalid_argument(fmt::format("sink node type '{}' declares output ports", type.name));
  }
  if (types_.count(type.name)) {
    throw std::invalid_argument(
        fmt::format("node type '{}' is already registered ({})", type.name, origins_.find(type.name)->second));
  }
  std::string name = type.name;
  origins_.emplace(name, std::move(origin));
  types_.emplace(std::move(name), std::move(type));
}

std::string Registry::origin(std::string_view name) const {
  auto it = origins_.find(name);
  return it == origins_.end() ? "" : it->second;
}

const NodeType* Registry::find(std::string_view name) const {
  auto it = types_.find(name);
  return it == types_.end() ? nullptr : &it->second;
}

std::vector<std::string> Registry::names() const {
  std::vector<std::string> out;
  for (const auto& [name, type] : types_) out.push_back(name);
  return out;
}

}  // namespace sluice
