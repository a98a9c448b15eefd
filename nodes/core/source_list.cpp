// source.list: records from an inline list, from the lines of a file (read lazily), or from a
// template over a numeric range.
#include <fmt/format.h>

#include <charconv>
#include <functional>
#include <stop_token>

#include "../builtin.hpp"
#include "line_reader.hpp"

namespace sluice::nodes {
namespace {

class InlineList final : public SourceNode {
 public:
  InlineList(std::string field, std::vector<std::string> items) : field_(std::move(field)), items_(std::move(items)) {}

  bool next(Record& out) override {
    if (index_ >= items_.size()) return false;
    out.set(field_, Value(items_[index_++]));
    return true;
  }

 private:
  std::string field_;
  std::vector<std::string> items_;
  std::size_t index_ = 0;
};

// Lines of a file, a pipe or standard input ('-'), read lazily (LineReader).
class FileLines final : public SourceNode {
 public:
  FileLines(std::string field, const std::string& path, std::stop_token stop, std::function<void()> idle)
      : field_(std::move(field)), lines_(path, std::move(stop), std::move(idle)) {}

  // Blank lines and lines starting with '#' are skipped; surrounding whitespace is trimmed.
  bool next(Record& out) override {
    std::string_view line;
    while (lines_.next(line)) {
      std::size_t b = line.find_first_not_of(" \t\r");
      if (b == std::string_view::npos || line[b] == '#') continue;
      std::size_t e = line.find_last_not_of(" \t\r");
      out.set(field_, Value(std::string(line.substr(b, e - b + 1))));
      return true;
    }
    return false;
  }

 private:
  std::string field_;
  LineReader lines_;
};

class RangeTemplate final : public SourceNode {
 public:
  RangeTemplate(std::string field, const std::string& pattern, std::int64_t from, std::int64_t to, std::int64_t step)
      : field_(std::move(field)), n_(from), to_(to), step_(step) {
    std::size_t start = 0;
    while (true) {
      std::size_t at = pattern.find("{n}", start);
      pieces_.push_back(pattern.substr(start, at == std::string::npos ? std::string::npos : at - start));
      if (at == std::string::npos) break;
      start = at + 3;
    }
  }

  bool next(Record& out) override {
    if (step_ > 0 ? n_ > to_ : n_ < to_) return false;
    char digits[24];
    auto [end, ec] = std::to_chars(digits, digits + sizeof digits, n_);
    std::string_view number(digits, static_cast<std::size_t>(end - digits));
    std::string text;
    text.reserve(pieces_.size() * number.size() + 64);
    for (std::size_t i = 0; i < pieces_.size(); ++i) {
      if (i) text += number;
      text += pieces_[i];
    }
    out.reserve(2);
    out.set(field_, Value(std::move(text)));
    out.set("n", Value(n_));
    n_ += step_;
    return true;
  }

 private:
  std::string field_;
  std::vector<std::string> pieces_;
  std::int64_t n_, to_, step_;
};

void check(const Config& c, const Location& owner, Diagnostics& diags) {
  int given = c.has("urls") + c.has("file") + c.has("template");
  if (given != 1) {
    diags.error(owner, fmt::format("source.list needs exactly one of 'urls', 'file' or 'template' (got {})", given));
  }
  if (c.has("template")) {
    if (!c.has("to")) diags.error(owner, "source.list with 'template' needs 'to' (the last n)");
    if (c.string("template").find("{n}") == std::string::npos) {
      diags.error(c.where("template"), "template has no '{n}' placeholder");
    }
    if (c.has("step") && c.integer("step") == 0) diags.error(c.where("step"), "step must not be 0");
  } else {
    for (const char* key : {"from", "to", "step"}) {
      if (c.explicitly_set(key)) diags.error(c.where(key), fmt::format("'{}' applies only with 'template'", key));
    }
  }
}

}  // namespace

NodeType source_list_type() {
  NodeType t;
  t.name = "source.list";
  t.kind = NodeKind::source;
  t.summary = "emits records from an inline list, the lines of a file, or a numbered template";
  t.ports = {{"out", PortDirection::output, "one record per item"}};
  t.schema = Schema(
      {
          FieldSpec::list("urls", FieldSpec::string("url", "an item"), "inline items"),
          FieldSpec::string("file",
                            "a file with one item per line, read lazily (blank and # lines and a UTF-8 byte order mark "
                            "skipped; a gzip file read as the text it holds); '-' reads standard input"),
          FieldSpec::string("template", "an item with an {n} placeholder, for n from 'from' to 'to'"),
          FieldSpec::integer("from", "first n of a template").with_default("1"),
          FieldSpec::integer("to", "last n of a template (inclusive)"),
          FieldSpec::integer("step", "increment of n").with_default("1"),
          FieldSpec::string("field", "name of the field that holds each item").with_default("url"),
      },
      check);
  t.factory = [](const NodeContext& ctx) -> std::unique_ptr<Node> {
    const Config& c = ctx.config;
    std::string field = c.string("field");
    if (c.has("urls")) {
      std::vector<std::string> items;
      for (const auto& item : c.list("urls")) items.push_back(std::get<Value>(item.v).to_text());
      return std::make_unique<InlineList>(field, std::move(items));
    }
    if (c.has("file")) return std::make_unique<FileLines>(field, c.string("file"), ctx.stop, ctx.idle);
    return std::make_unique<RangeTemplate>(field, c.string("template"), c.integer("from"), c.integer("to"),
                                           c.integer("step"));
  };
  t.example = R"(- id: pages
  type: source.list
  template: "https://shop.example/p/{n}"
  from: 1
  to: 500)";
  return t;
}

}  // namespace sluice::nodes
