// distinct: lets the first record of each key through and drops the repeats: an item found on
// several listing pages, a URL in two seed lists. The key is a field template ("{sku}", "{url}");
// the node keeps 16 bytes of hash per key seen (two independent 64-bit hashes: a repeat is
// recognised by both, so a collision that would drop a new record needs both to collide).
#include <fmt/format.h>

#include <functional>
#include <vector>

#include "../builtin.hpp"
#include "../flat_set.hpp"
#include "sluice/template.hpp"

namespace sluice::nodes {
namespace {

struct KeyHash {
  std::uint64_t a = 0, b = 0;
  bool operator==(const KeyHash&) const = default;
};

std::uint64_t bucket_of(const KeyHash& k) {
  return k.a;
}
KeyHash substitute() {
  return KeyHash{0, 1};
}
using SeenSet = FlatHashSet<KeyHash, bucket_of, substitute>;

class Distinct final : public TransformNode {
 public:
  Distinct(FieldTemplate key, std::string key_text)
      : key_(std::move(key)), fields_(key_.fields()), key_text_(std::move(key_text)) {}

  void process(Record& record, Emitter& out) override {
    const bool none = std::all_of(fields_.begin(), fields_.end(), [&](const std::string& name) {
      const Value* v = record.get(name);
      return !v || v->is_null();
    });
    if (none) {
      return out.fail(std::move(record),
                      fmt::format("distinct: the record has none of the fields of its key '{}'", key_text_));
    }
    const std::string key = key_.render(record);
    const KeyHash hash{fnv1a64(key), std::hash<std::string>{}(key)};
    if (!seen_.insert(hash)) return;  // a repeat: dropped, its permits released with it
    out.emit(std::move(record));
  }

 private:
  FieldTemplate key_;
  std::vector<std::string> fields_;
  std::string key_text_;
  SeenSet seen_;  // serial node: one thread at a time
};

std::string check_key(const Value& v) {
  std::string error;
  auto t = FieldTemplate::compile(v.to_text(), &error);
  if (!t) return error;
  if (t->is_constant()) return "the key names no field: write a template such as \"{sku}\" or \"{shop}/{id}\"";
  return "";
}

}  // namespace

NodeType distinct_type() {
  NodeType t;
  t.name = "distinct";
  t.kind = NodeKind::transform;
  t.summary = "lets the first record of each key through and drops the repeats (an item listed on several pages)";
  t.ports = transform_ports();
  t.schema = Schema({
      FieldSpec::string("key",
                        "a field template whose text is the record's key: \"{url}\", \"{sku}\", \"{shop}/{id}\" "
                        "(or \"{a:json}{b:json}\" when the fields' text could run together)")
          .with_default("\"{url}\"")
          .validated_by(check_key),
  });
  t.factory = [](const NodeContext& ctx) -> std::unique_ptr<Node> {
    const std::string text = ctx.config.string("key");
    return std::make_unique<Distinct>(*FieldTemplate::compile(text), text);
  };
  t.example = R"(- id: once
  type: distinct
  key: "{sku}")";
  return t;
}

}  // namespace sluice::nodes
