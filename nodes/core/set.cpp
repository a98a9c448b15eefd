// set: adds, renames and removes fields.
#include <fmt/format.h>

#include "../builtin.hpp"

namespace sluice::nodes {
namespace {

// A field value to set: a constant, or a string template with {field} references ({{ and }} escape).
struct Assignment {
  std::string name;
  Value constant;
  std::vector<std::string> pieces;  // literal, field, literal, field, ..., literal
  bool is_template = false;
};

Assignment compile(std::string name, Value value, const Location& where, Diagnostics* diags) {
  Assignment a;
  a.name = std::move(name);
  const std::string* s = value.as_string();
  if (!s || s->find('{') == std::string::npos) {
    a.constant = std::move(value);
    return a;
  }
  a.is_template = true;
  std::string literal;
  for (std::size_t i = 0; i < s->size(); ++i) {
    char c = (*s)[i];
    if ((c == '{' || c == '}') && i + 1 < s->size() && (*s)[i + 1] == c) {
      literal.push_back(c);
      ++i;
    } else if (c == '{') {
      std::size_t end = s->find('}', i);
      if (end == std::string::npos) {
        if (diags) diags->error(where, fmt::format("fields.{}: unterminated '{{' in '{}'", a.name, *s));
        break;
      }
      a.pieces.push_back(std::move(literal));
      literal.clear();
      a.pieces.push_back(s->substr(i + 1, end - i - 1));
      i = end;
    } else {
      literal.push_back(c);
    }
  }
  a.pieces.push_back(std::move(literal));
  return a;
}

class Set final : public TransformNode {
 public:
  Set(std::vector<std::pair<std::string, std::string>> renames, std::vector<Assignment> assignments,
      std::vector<std::string> removals)
      : renames_(std::move(renames)), assignments_(std::move(assignments)), removals_(std::move(removals)) {}

  void process(Record& record, Emitter& out) override {
    for (const auto& [from, to] : renames_) record.rename(from, to);
    for (const auto& a : assignments_) {
      if (!a.is_template) {
        record.set(a.name, a.constant);
        continue;
      }
      std::string text;
      for (std::size_t i = 0; i < a.pieces.size(); ++i) {
        if (i % 2 == 0) {
          text += a.pieces[i];
        } else if (const Value* v = record.get(a.pieces[i])) {
          text += v->to_text();
        }
      }
      record.set(a.name, Value(std::move(text)));
    }
    for (const auto& name : removals_) record.erase(name);
    out.emit(std::move(record));
  }

 private:
  std::vector<std::pair<std::string, std::string>> renames_;
  std::vector<Assignment> assignments_;
  std::vector<std::string> removals_;
};

void check(const Config& c, const Location& owner, Diagnostics& diags) {
  if (!c.explicitly_set("fields") && !c.explicitly_set("rename") && !c.explicitly_set("remove")) {
    diags.error(owner, "set needs at least one of 'fields', 'rename' or 'remove'");
  }
  if (c.has("fields")) {
    for (const auto& [name, value] : c.map("fields")) compile(name, std::get<Value>(value.v), value.where, &diags);
  }
}

}  // namespace

NodeType set_type() {
  NodeType t;
  t.name = "set";
  t.kind = NodeKind::transform;
  t.summary = "renames, sets and removes fields (in that order); string values may use {field} templates";
  t.ports = transform_ports();
  t.schema = Schema(
      {
          FieldSpec::map("fields", FieldSpec::scalar("value", "a constant, or a string with {field} references"),
                         "fields to set: name -> value")
              .with_default(""),
          FieldSpec::map("rename", FieldSpec::string("to", "the new name"), "fields to rename: old -> new")
              .with_default(""),
          FieldSpec::list("remove", FieldSpec::string("name", "a field name"), "fields to remove").with_default(""),
      },
      check);
  t.factory = [](const NodeContext& ctx) -> std::unique_ptr<Node> {
    const Config& c = ctx.config;
    std::vector<std::pair<std::string, std::string>> renames;
    for (const auto& [from, to] : c.map("rename")) renames.emplace_back(from, std::get<Value>(to.v).to_text());
    std::vector<Assignment> assignments;
    for (const auto& [name, value] : c.map("fields")) {
      assignments.push_back(compile(name, std::get<Value>(value.v), value.where, nullptr));
    }
    std::vector<std::string> removals;
    for (const auto& item : c.list("remove")) removals.push_back(std::get<Value>(item.v).to_text());
    return std::make_unique<Set>(std::move(renames), std::move(assignments), std::move(removals));
  };
  t.example = R"(- id: tag
  type: set
  rename: {n: page}
  fields: {source: demo, label: "page {page}"})";
  return t;
}

}  // namespace sluice::nodes
