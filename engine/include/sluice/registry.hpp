// The registry of node types: built-ins are added from one explicit list (register_builtin_nodes),
// plugins add theirs the same way.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "sluice/node.hpp"

namespace sluice {

class Registry {
 public:
  // Adds a node type. Throws std::invalid_argument when the name is taken or the declaration is
  // inconsistent (no factory, a transform without an input port, ...). `origin` says where the
  // type comes from, for messages: "built in" or "plugin '<path>'".
  void add(NodeType type, std::string origin = "built in");
  const NodeType* find(std::string_view name) const;
  std::vector<std::string> names() const;
  // Where a registered type comes from ("built in", "plugin '<path>'"); empty when unknown.
  std::string origin(std::string_view name) const;
  // The plugin libraries (dlopen handles) whose types were registered here, so that load_plugin
  // loads each file once however often, and by whatever path, it is named.
  void add_plugin(const void* handle) { plugins_.insert(handle); }
  bool has_plugin(const void* handle) const { return plugins_.count(handle) > 0; }

 private:
  std::map<std::string, NodeType, std::less<>> types_;
  std::map<std::string, std::string, std::less<>> origins_;
  std::set<const void*> plugins_;
};

// Registers every built-in node type (defined in nodes/builtin.cpp).
void register_builtin_nodes(Registry& registry);

}  // namespace sluice
