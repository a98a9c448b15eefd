// filter: keeps the records whose field satisfies a simple condition.
#include <fmt/format.h>
#include <re2/re2.h>

#include <charconv>
#include <cmath>
#include <functional>
#include <memory>

#include "../builtin.hpp"
#include "../text.hpp"

namespace sluice::nodes {
namespace {

enum class Op { eq, ne, lt, le, gt, ge, exists, missing, contains, starts_with, ends_with, matches, in, not_in };

const std::vector<std::string> kOps = {"eq",      "ne",       "lt",          "le",        "gt",      "ge", "exists",
                                       "missing", "contains", "starts_with", "ends_with", "matches", "in", "not_in"};

std::optional<double> number(const Value& v) {
  if (const auto* i = v.as_int()) return static_cast<double>(*i);
  if (const auto* d = v.as_double()) return *d;
  return std::nullopt;
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

// Text that is wholly a number, spaces around it aside: what a selector or a regex capture takes
// from a page ("19.99", " 7 ", "-3e2"). Not "1,299", "$5", "inf" or "0x10".
std::optional<double> number_in_text(const Value& v) {
  const auto* s = v.as_string();
  if (!s) return std::nullopt;
  const char* begin = s->data();
  const char* end = begin + s->size();
  while (begin < end && is_space(*begin)) ++begin;
  while (end > begin && is_space(end[-1])) --end;
  if (begin < end && *begin == '+') ++begin;
  if (begin == end) return std::nullopt;
  double d = 0;
  auto [rest, ec] = std::from_chars(begin, end, d);
  if (ec != std::errc() || rest != end || !std::isfinite(d)) return std::nullopt;
  return d;
}

// Three-way comparison. Against a number, a number or a text that is one compares numerically
// (parse nodes give text: "100" is more than 20, not less as "100" < "20" as text), and any other
// value cannot be ordered (nullopt: it passes only ne and not_in). Other values compare as text.
std::optional<int> compare(const Value& a, const Value& b) {
  auto x = number(a);
  auto y = number(b);
  if (x || y) {
    if (!x) x = number_in_text(a);
    if (!y) y = number_in_text(b);
    if (!x || !y) return std::nullopt;
    return *x < *y ? -1 : (*x > *y ? 1 : 0);
  }
  std::string s = a.to_text();
  std::string t = b.to_text();
  return s.compare(t) < 0 ? -1 : (s == t ? 0 : 1);
}

class Filter final : public TransformNode {
 public:
  Filter(std::string field, Op op, Value value, std::vector<Value> values, std::function<void(std::string)> notice)
      : field_(std::move(field)),
        op_(op),
        value_(std::move(value)),
        values_(std::move(values)),
        notice_(std::move(notice)) {
    text_ = value_.to_text();
    if (op_ == Op::matches) pattern_ = std::make_unique<RE2>(text_);
  }

  // (Serial: never called concurrently, so the flags and counts need no atomics.)
  void process(Record& record, Emitter& out) override {
    if (!had_field_) {
      any_ = true;
      const Value* v = record.get(field_);
      had_field_ = v && !v->is_null();
    }
    if (keep(record)) out.emit(std::move(record));
  }

  // A field named wrong (`prcie`) makes every record fail or pass the test alike, and a price
  // scraped with its currency is no number to compare: neither fails anything, so both are said.
  void finish() override {
    if (!notice_) return;
    if (unordered_ > 0) {
      notice_(
          fmt::format("{} record{} had a '{}' that is not a number (the first: '{}'), so 'op: {}' with {} let none "
                      "of them through; have the parse node read it as a number: {{select: ..., type: number}}",
                      unordered_, unordered_ == 1 ? "" : "s", field_, first_unordered_,
                      kOps[static_cast<std::size_t>(op_)], value_.to_text()));
    }
    if (!any_ || had_field_) return;
    const bool passes = op_ == Op::ne || op_ == Op::not_in || op_ == Op::missing;
    notice_(fmt::format("no record had a field '{}' (or one that is not null), so 'op: {}' let {} of them through",
                        field_, kOps[static_cast<std::size_t>(op_)], passes ? "all" : "none"));
  }

 private:
  bool keep(const Record& record) {
    const Value* v = record.get(field_);
    if (op_ == Op::exists) return v && !v->is_null();
    if (op_ == Op::missing) return !v || v->is_null();
    if (!v) return op_ == Op::ne || op_ == Op::not_in;
    switch (op_) {
      case Op::eq:
        return compare(*v, value_) == 0;
      case Op::ne:
        return compare(*v, value_) != 0;
      case Op::lt:
      case Op::le:
      case Op::gt:
      case Op::ge:
        return ordered(*v);
      case Op::contains:
        return text_of(*v).find(text_) != std::string::npos;
      case Op::starts_with:
        return text_of(*v).starts_with(text_);
      case Op::ends_with:
        return text_of(*v).ends_with(text_);
      case Op::matches:
        return RE2::PartialMatch(text_of(*v), *pattern_);
      case Op::in:
      case Op::not_in:
        return std::any_of(values_.begin(), values_.end(), [&](const Value& x) { return compare(*v, x) == 0; }) ==
               (op_ == Op::in);
      default:
        return false;
    }
  }

  // lt, le, gt, ge. A value that cannot be ordered against the number it is compared with (a
  // price scraped as "1,299.00") passes none of them, and is counted for the warning at the end.
  bool ordered(const Value& v) {
    auto c = compare(v, value_);
    if (!c) {
      if (!v.is_null() && unordered_++ == 0) {
        first_unordered_ = sample_of(v.to_text());
      }
      return false;
    }
    switch (op_) {
      case Op::lt:
        return *c < 0;
      case Op::le:
        return *c <= 0;
      case Op::gt:
        return *c > 0;
      default:
        return *c >= 0;
    }
  }

  static std::string text_of(const Value& v) {
    if (const auto* s = v.as_string()) return *s;
    return v.to_text();
  }

  std::string field_;
  Op op_;
  Value value_;
  std::vector<Value> values_;  // in, not_in
  std::string text_;
  std::unique_ptr<RE2> pattern_;  // matches
  std::function<void(std::string)> notice_;
  bool any_ = false;             // a record came
  bool had_field_ = false;       // one had the field, not null
  std::uint64_t unordered_ = 0;  // records whose value could not be ordered against a number
  std::string first_unordered_;  // the first such value
};

void check(const Config& c, const Location& owner, Diagnostics& diags) {
  if (!c.has("op")) return;
  std::string op = c.string("op");
  const bool unary = op == "exists" || op == "missing";
  const bool set = op == "in" || op == "not_in";
  if ((unary || set) && c.has("value")) {
    diags.error(c.where("value"), fmt::format("op '{}' takes no 'value'{}", op, set ? " (it takes 'values')" : ""));
  }
  if (!unary && !set && !c.has("value")) diags.error(owner, fmt::format("op '{}' needs a 'value' to compare with", op));
  if (set && c.list("values").empty()) diags.error(owner, fmt::format("op '{}' needs 'values': a list to look in", op));
  if (!set && c.explicitly_set("values")) {
    diags.error(c.where("values"), fmt::format("'values' is for op 'in' and 'not_in', not '{}'", op));
  }
  if (op == "matches" && c.has("value")) {
    RE2 re(c.scalar("value").to_text(), RE2::Quiet);
    if (!re.ok()) diags.error(c.where("value"), fmt::format("value: invalid regular expression: {}", re.error()));
  }
}

}  // namespace

NodeType filter_type() {
  NodeType t;
  t.name = "filter";
  t.kind = NodeKind::transform;
  t.summary = "keeps records whose field satisfies a condition, drops the others";
  t.ports = transform_ports();
  t.schema = Schema(
      {
          FieldSpec::string("field", "the field to test").make_required(),
          FieldSpec::enumeration(
              "op", kOps,
              "comparison: against a number, numbers and text that is one (\"19.99\") compare numerically, "
              "other values as text; exists/missing "
              "take no value; matches an RE2 pattern; in/not_in one of 'values'")
              .with_default("eq"),
          FieldSpec::scalar("value", "the value to compare with (matches: an RE2 pattern, found anywhere in the text)"),
          FieldSpec::list("values", FieldSpec::scalar("value", "a value"), "in, not_in: the values to look for")
              .with_default(""),
      },
      check);
  t.factory = [](const NodeContext& ctx) -> std::unique_ptr<Node> {
    const Config& c = ctx.config;
    std::string op = c.string("op");
    auto index = std::find(kOps.begin(), kOps.end(), op) - kOps.begin();
    std::vector<Value> values;
    for (const auto& v : c.list("values")) values.push_back(std::get<Value>(v.v));
    return std::make_unique<Filter>(c.string("field"), static_cast<Op>(index),
                                    c.has("value") ? c.scalar("value") : Value{}, std::move(values), ctx.notice);
  };
  t.parallel = false;
  t.example = R"(- id: in_stock
  type: filter
  field: stock
  op: gt
  value: 0)";
  return t;
}

}  // namespace sluice::nodes
