// set: renames, sets and removes fields.
#include <fmt/format.h>

#include <functional>

#include "../builtin.hpp"
#include "sluice/template.hpp"

namespace sluice::nodes {
namespace {

// A field value to set: a constant, or a string template with {field} references.
struct Assignment {
  std::string name;
  Value constant;
  std::optional<FieldTemplate> text;
};

class Set final : public TransformNode {
 public:
  Set(std::vector<std::pair<std::string, std::string>> renames, std::vector<Assignment> assignments,
      std::vector<std::string> removals, std::function<void(std::string)> notice)
      : renames_(std::move(renames)),
        assignments_(std::move(assignments)),
        removals_(std::move(removals)),
        notice_(std::move(notice)),
        renamed_(renames_.size(), false),
        removed_(removals_.size(), false) {}

  // (Serial: never called concurrently, so what it notes needs no atomics.)
  void process(Record& record, Emitter& out) override {
    any_ = true;
    for (std::size_t i = 0; i < renames_.size(); ++i) {
      if (record.rename(renames_[i].first, renames_[i].second)) renamed_[i] = true;
    }
    for (const auto& a : assignments_) record.set(a.name, a.text ? Value(a.text->render(record)) : a.constant);
    for (std::size_t i = 0; i < removals_.size(); ++i) {
      if (record.erase(removals_[i])) removed_[i] = true;
    }
    out.emit(std::move(record));
  }

  // A field to rename or remove that no record had: a name mistyped, or one an upstream node calls
  // otherwise (the rename did nothing, and what reads the new name finds nothing).
  void finish() override {
    if (!any_ || !notice_) return;
    for (std::size_t i = 0; i < renames_.size(); ++i) {
      if (!renamed_[i])
        notice_(
            fmt::format("rename: no record had a field '{}' to rename to '{}'", renames_[i].first, renames_[i].second));
    }
    for (std::size_t i = 0; i < removals_.size(); ++i) {
      if (!removed_[i]) notice_(fmt::format("remove: no record had a field '{}'", removals_[i]));
    }
  }

 private:
  std::vector<std::pair<std::string, std::string>> renames_;
  std::vector<Assignment> assignments_;
  std::vector<std::string> removals_;
  std::function<void(std::string)> notice_;
  bool any_ = false;                     // a record came
  std::vector<bool> renamed_, removed_;  // by index: a record had the field
};

Assignment assignment(const std::string& name, const Value& value) {
  Assignment a{name, value, std::nullopt};
  if (const std::string* s = value.as_string()) {
    if (auto t = FieldTemplate::compile(*s)) {
      if (t->is_constant()) {
        a.constant = Value(t->render(Record{}));  // "{{" and "}}" are braces here too
      } else {
        a.text = std::move(t);
      }
    }
  }
  return a;
}

void check(const Config& c, const Location& owner, Diagnostics& diags) {
  if (!c.explicitly_set("fields") && !c.explicitly_set("rename") && !c.explicitly_set("remove")) {
    diags.error(owner, "set needs at least one of 'fields', 'rename' or 'remove'");
  }
  for (const auto& [name, value] : c.map("fields")) {
    std::string error;
    const std::string* s = std::get<Value>(value.v).as_string();
    if (s && !FieldTemplate::compile(*s, &error)) diags.error(value.where, fmt::format("fields.{}: {}", name, error));
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
    for (const auto& [name, value] : c.map("fields")) assignments.push_back(assignment(name, std::get<Value>(value.v)));
    std::vector<std::string> removals;
    for (const auto& item : c.list("remove")) removals.push_back(std::get<Value>(item.v).to_text());
    return std::make_unique<Set>(std::move(renames), std::move(assignments), std::move(removals), ctx.notice);
  };
  t.example = R"(- id: tag
  type: set
  rename: {n: page}
  fields: {source: demo, label: "page {page}"})";
  return t;
}

}  // namespace sluice::nodes
