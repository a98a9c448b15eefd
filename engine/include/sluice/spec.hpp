// The parsed spec: a pipeline file's YAML as a tree that keeps the file:line:col of every key and
// value. Produced by parse_spec(); consumed by the planner. Nothing here knows about node types.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sluice/diagnostics.hpp"

namespace sluice {

struct SpecNode {
  enum class Kind { null, scalar, sequence, map };

  // Defined in spec.cpp, where SpecNode is complete: clang 14 with libstdc++ 12 instantiates the
  // vectors' members of a recursive type at their first inline use (tools/fuzz.sh builds with clang).
  SpecNode();
  SpecNode(const SpecNode&);
  SpecNode(SpecNode&&) noexcept;
  SpecNode& operator=(const SpecNode&);
  SpecNode& operator=(SpecNode&&) noexcept;
  ~SpecNode();

  Kind kind = Kind::null;
  std::string scalar;   // text of a scalar, after ${VAR} substitution
  bool quoted = false;  // a quoted scalar is always a string
  Location where;
  std::vector<SpecNode> items;                         // sequence
  std::vector<std::pair<SpecNode, SpecNode>> entries;  // map: key node, value node (file order)

  bool is_map() const { return kind == Kind::map; }
  bool is_sequence() const { return kind == Kind::sequence; }
  bool is_scalar() const { return kind == Kind::scalar; }
  bool is_null() const { return kind == Kind::null; }
  // The value of `key` in a map, or null when absent (or when this is not a map).
  const SpecNode* find(std::string_view key) const;
  // "a map", "a list", "a scalar 'x'", "null": for "expected X, got Y" messages.
  std::string describe() const;
};

// Looks up an environment variable for ${NAME} substitution; nullopt when unset.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
// The process environment.
EnvLookup process_env();

// Parses YAML text into a spec tree. Reports YAML syntax errors, duplicate keys (yaml-cpp keeps the
// first silently; sluice refuses them), and unset ${NAME} variables, each at its position.
// `${NAME:-default}` uses default when NAME is unset; `$${` writes a literal `${`.
// Returns the root (null kind when the text could not be parsed).
SpecNode parse_spec(std::string_view text, const std::string& file, const EnvLookup& env, Diagnostics& diags);

}  // namespace sluice
