// sink.csv: writes records as CSV (RFC 4180 quoting) to stdout or a file, one row per record.
#include <fmt/format.h>

#include <chrono>

#include "../builtin.hpp"
#include "file_sink.hpp"
#include "sluice/json.hpp"

namespace sluice::nodes {
namespace {

class Csv final : public FileSink {
 public:
  Csv(const std::string& path, bool append, std::vector<std::string> fields, char delimiter, bool header, bool bom,
      bool escape_formulas, std::size_t buffer, std::chrono::nanoseconds interval, const NodeContext& ctx)
      : FileSink(path, append, buffer, interval, ctx, Framing::csv),
        fields_(std::move(fields)),
        delimiter_(delimiter),
        escape_formulas_(escape_formulas) {
    watch(FieldPresence(FieldPresence::of_fields(fields_), "row", "empty", ctx.notice));
    // A file appended to keeps the header (and byte order mark) it has.
    std::string line;
    if (bom && !had_content()) line = "\xEF\xBB\xBF";
    if (header && !had_content()) {
      for (std::size_t i = 0; i < fields_.size(); ++i) {
        if (i) line.push_back(delimiter_);
        cell(fields_[i], line);
      }
      line.push_back('\n');
    }
    if (!line.empty()) preamble(line);
  }

 private:
  // Null and missing fields are empty cells; numbers and booleans are written as JSON writes them,
  // lists as JSON text; text (strings and bytes) with invalid UTF-8 replaced by U+FFFD, as in JSON.
  void format(const Record& record, std::string& out) override {
    const std::size_t start = out.size();
    for (std::size_t i = 0; i < fields_.size(); ++i) {
      if (i) out.push_back(delimiter_);
      const Value* v = record.get(fields_[i]);
      if (!v && record.error && fields_[i] == "_error") {  // a routed record's error: its message
        text_cell(record.error->message, out);
        continue;
      }
      if (!v || v->is_null()) continue;
      if (const std::string* s = v->as_string()) {
        text_cell(*s, out);
      } else if (const Bytes* b = v->as_bytes()) {
        text_cell(b->view(), out);
      } else {
        std::string json;
        append_json(json, *v);
        cell(json, out);
      }
    }
    // One empty cell is written "": an empty line would be read as no row at all.
    if (out.size() == start) out += "\"\"";
    out.push_back('\n');
  }

  // Text from a page: a cell a spreadsheet would read as a formula (=, +, -, @ first, or a tab or
  // carriage return) gets a leading ' unless escape_formulas is off (OWASP's CSV injection).
  void text_cell(std::string_view raw, std::string& out) {
    const std::string text = sanitize_utf8(raw);
    if (escape_formulas_ && !text.empty() &&
        std::string_view("=+-@\t\r").find(text.front()) != std::string_view::npos) {
      cell("'" + text, out);
    } else {
      cell(text, out);
    }
  }

  // RFC 4180: quoted when it holds the delimiter, a quote or a line break, quotes doubled.
  void cell(std::string_view text, std::string& out) const {
    const char specials[] = {delimiter_, '"', '\n', '\r', '\0'};
    if (text.find_first_of(specials) == std::string_view::npos) {
      out += text;
      return;
    }
    out.push_back('"');
    for (char c : text) {
      if (c == '"') out.push_back('"');
      out.push_back(c);
    }
    out.push_back('"');
  }

  std::vector<std::string> fields_;
  char delimiter_;
  bool escape_formulas_;
};

}  // namespace

std::string check_csv_delimiter(const Value& v) {
  const std::string text = v.to_text();
  if (text.size() != 1 || text == "\"" || text == "\n" || text == "\r") {
    return fmt::format("must be one character other than a quote or a line break, got '{}'", text);
  }
  return "";
}

NodeType sink_csv_type() {
  NodeType t;
  t.name = "sink.csv";
  t.kind = NodeKind::sink;
  t.summary = "writes each record as one CSV row (RFC 4180 quoting, a header line), to stdout or a file";
  t.ports = {{"in", PortDirection::input, "records to write"}};
  t.schema = Schema({
      FieldSpec::list("fields", FieldSpec::string("name", "a field name"),
                      "the columns, in this order: each the record field of its name (missing and null ones empty)")
          .make_required(),
      FieldSpec::string("path",
                        "file to write ('.gz' at its end: gzipped); '-' or /dev/stdout writes to standard output")
          .with_default("-"),
      FieldSpec::boolean("append", "append to an existing file instead of replacing it (no second header)")
          .with_default("false"),
      FieldSpec::string("delimiter", "the character between cells: ',' or a tab (\"\\t\") or ';'")
          .with_default(",")
          .validated_by(check_csv_delimiter),
      FieldSpec::boolean("header", "write the field names as the first line").with_default("true"),
      FieldSpec::boolean("bom", "start a new file with a UTF-8 byte order mark, which Excel needs to read it as UTF-8")
          .with_default("false"),
      FieldSpec::boolean("escape_formulas",
                         "prefix text that starts with = + - @ (a spreadsheet formula) with ' (OWASP CSV injection)")
          .with_default("true"),
      FieldSpec::size("buffer", "bytes collected before each write to the file").with_default("256KiB"),
      FieldSpec::duration("interval", "the longest a row waits in the buffer before it is written")
          .with_default("200ms"),
  });
  t.factory = [](const NodeContext& ctx) -> std::unique_ptr<Node> {
    const Config& c = ctx.config;
    std::vector<std::string> fields;
    for (const auto& f : c.list("fields")) fields.push_back(std::get<Value>(f.v).to_text());
    return std::make_unique<Csv>(c.string("path"), c.boolean("append"), std::move(fields), c.string("delimiter")[0],
                                 c.boolean("header"), c.boolean("bom"), c.boolean("escape_formulas"),
                                 static_cast<std::size_t>(c.size("buffer")), c.duration("interval"), ctx);
  };
  t.example = R"(- id: sheet
  type: sink.csv
  path: items.csv
  fields: [sku, name, price, url])";
  return t;
}

}  // namespace sluice::nodes
