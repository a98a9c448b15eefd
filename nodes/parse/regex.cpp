// parse.regex: extracts fields from text responses with RE2 (never std::regex).
#include <fmt/format.h>
#include <re2/re2.h>

#include <algorithm>
#include <functional>
#include <map>

#include "../builtin.hpp"
#include "charset.hpp"
#include "field_type.hpp"
#include "links.hpp"

namespace sluice::nodes {
namespace {

// The named groups of `types`: group name -> how its captures are read.
using GroupTypes = std::map<std::string, std::shared_ptr<parse::TypedField>>;

class RegexParser final : public TransformNode {
 public:
  RegexParser(const NodeContext& ctx, std::shared_ptr<const RE2> pattern, GroupTypes types)
      : body_field_(ctx.config.string("body_field")),
        pattern_(std::move(pattern)),
        all_(ctx.config.boolean("all")),
        keep_(parse::keep_of(ctx.config)),
        types_(std::move(types)),
        notice_(ctx.notice) {}

  void finish() override {
    for (const auto& [name, typed] : types_) typed->say(name, notice_);
  }

  // One record per match (all: true) or for the first match; fields are the named capture groups.
  void process(Record& page, Emitter& out) override {
    // Patterns are UTF-8, and so is what they capture: the text is decoded as parse.html's pages are.
    const parse::PageText decoded = parse::page_text(page, body_field_);
    const std::string_view text = decoded.text();
    const int groups = pattern_->NumberOfCapturingGroups();
    std::vector<re2::StringPiece> captures(static_cast<std::size_t>(groups) + 1);
    std::size_t pos = 0;
    bool any = false;
    while (pos <= text.size() &&
           pattern_->Match(text, pos, text.size(), RE2::UNANCHORED, captures.data(), groups + 1)) {
      any = true;
      Record r = page.derive();
      parse::keep_fields(page, keep_, r);
      for (const auto& [name, index] : pattern_->NamedCapturingGroups()) {
        const auto& c = captures[static_cast<std::size_t>(index)];
        if (!c.data()) {
          r.set(name, Value());
        } else if (auto typed = types_.find(name); typed != types_.end()) {
          r.set(name, typed->second->convert_text(std::string_view(c.data(), c.size()), &page).value_or(Value()));
        } else {
          r.set(name, Value(std::string(c.data(), c.size())));
        }
      }
      out.emit(std::move(r), 0);
      if (!all_) break;
      std::size_t end = static_cast<std::size_t>(captures[0].data() - text.data()) + captures[0].size();
      pos = captures[0].empty() ? end + 1 : end;
    }
    if (!any) out.fail(std::move(page), fmt::format("pattern '{}' did not match", pattern_->pattern()));
  }

 private:
  std::string body_field_;
  std::shared_ptr<const RE2> pattern_;
  bool all_;
  std::vector<std::string> keep_;
  GroupTypes types_;
  std::function<void(std::string)> notice_;
};

std::string check_pattern(const Value& v) {
  RE2 re(v.to_text(), RE2::Quiet);
  if (!re.ok()) return fmt::format("invalid regular expression: {}", re.error());
  if (re.NamedCapturingGroups().empty()) return "the pattern needs named groups, e.g. (?P<price>[0-9.]+)";
  return "";
}

}  // namespace

NodeType parse_regex_type() {
  NodeType t;
  t.name = "parse.regex";
  t.kind = NodeKind::transform;
  t.summary = "extracts named capture groups of an RE2 pattern from text bodies";
  t.ports = transform_ports();
  t.schema = Schema(
      {
          FieldSpec::string("pattern", "RE2 pattern; each named group (?P<name>...) becomes a field")
              .make_required()
              .validated_by(check_pattern),
          FieldSpec::boolean("all", "one record per match instead of the first match only").with_default("false"),
          FieldSpec::string("body_field", "the field holding the text").with_default("body"),
          parse::keep_spec(),
          FieldSpec::map("types",
                         FieldSpec::enumeration("type", {"number", "integer", "date"}, "number, integer or date"),
                         "named group -> number, integer or date: the capture read as parse.html's type: number "
                         "reads text (\"$1,299.00\" is 1299; \"March 5, 2026\" is the date \"2026-03-05\"); one with "
                         "none is null, counted in a warning at the end")
              .with_default(""),
          parse::field_decimal_spec(),
          parse::field_date_order_spec(),
          parse::field_time_zone_spec("the groups types reads as dates"),
      },
      [](const Config& c, const Location&, Diagnostics& diags) {
        if (!c.has("pattern")) return;
        RE2 re(c.string("pattern"), RE2::Quiet);
        std::vector<std::string> produced;
        for (const auto& [name, index] : re.NamedCapturingGroups()) produced.push_back(name);
        parse::check_keep(c, produced, diags);
        const auto types_read_as = [&](std::initializer_list<std::string_view> wanted) {
          for (const auto& [name, value] : c.map("types")) {
            const std::string type = std::get<Value>(value.v).to_text();
            if (std::find(wanted.begin(), wanted.end(), type) != wanted.end()) return true;
          }
          return false;
        };
        if (c.explicitly_set("decimal") && !types_read_as({"number", "integer"})) {
          diags.error(c.where("decimal"), "decimal is for the groups that types reads as numbers, and there are none");
        }
        if (c.has("date_order") && !types_read_as({"date"})) {
          diags.error(c.where("date_order"),
                      "date_order is for the groups that types reads as dates, and there are none");
        }
        if (c.has("time_zone") && !types_read_as({"date"})) {
          diags.error(c.where("time_zone"),
                      "time_zone is for the groups that types reads as dates, and there are none");
        }
        parse::check_time_zone(c, diags);
        if (!re.ok() || !c.has("types")) return;
        for (const auto& [name, value] : c.map("types")) {
          if (std::find(produced.begin(), produced.end(), name) != produced.end()) continue;
          std::string groups;
          for (const auto& g : produced) groups += (groups.empty() ? "'" : ", '") + g + "'";
          diags.error(value.where,
                      fmt::format("types: '{}' is no named group of the pattern (its groups: {})", name, groups));
        }
      });
  t.factory = [](const NodeContext& ctx) -> std::unique_ptr<Node> {
    const Config& c = ctx.config;
    GroupTypes types;
    const auto zone = parse::time_zone_of(c);
    for (const auto& [name, value] : c.map("types")) {
      types[name] = std::make_shared<parse::TypedField>(parse::value_type_of(std::get<Value>(value.v).to_text()),
                                                        c.string("decimal").front(), parse::date_order_of(c), zone);
    }
    return std::make_unique<RegexParser>(ctx, std::make_shared<const RE2>(c.string("pattern")), std::move(types));
  };
  t.parallel = true;
  t.example = R"(- id: prices
  type: parse.regex
  pattern: 'SKU (?P<sku>[A-Z0-9]+): (?P<price>[0-9.,]+)'
  types: {price: number}
  all: true)";
  return t;
}

}  // namespace sluice::nodes
