// source.csv: the rows of a CSV file (RFC 4180, as spreadsheets write it) as records, one field per
// column, named by the header line. Read lazily, like source.list's files.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <charconv>
#include <functional>
#include <map>
#include <set>
#include <stop_token>

#include "../builtin.hpp"
#include "../parse/field_type.hpp"
#include "../text.hpp"
#include "line_reader.hpp"

namespace sluice::nodes {
namespace {

enum class CellType { text, integer, number, date };

class CsvRows final : public SourceNode {
 public:
  CsvRows(const std::string& path, char delimiter, bool header, std::vector<std::string> names,
          std::map<std::string, CellType> types, parse::DateOrder order, std::shared_ptr<const parse::TimeZone> zone,
          std::stop_token stop, std::function<void()> idle)
      : lines_(path, std::move(stop), std::move(idle)),
        delimiter_(delimiter),
        names_(std::move(names)),
        order_(order),
        zone_(std::move(zone)) {
    if (header) {
      std::vector<std::string> cells;
      if (!row(cells)) throw NodeError(fmt::format("'{}' is empty: expected a header line", lines_.name()));
      if (names_.empty())
        names_ = std::move(cells);
      else if (names_.size() != cells.size()) {
        throw NodeError(fmt::format("'{}' has {} columns in its header, and 'fields' names {}", lines_.name(),
                                    cells.size(), names_.size()));
      }
    }
    std::set<std::string> seen;
    for (auto& name : names_) {
      if (name.empty())
        throw NodeError(fmt::format("'{}': a column has no name: give it one in 'fields'", lines_.name()));
      if (!seen.insert(name).second) {
        throw NodeError(fmt::format("'{}' has two columns named '{}': name them in 'fields'", lines_.name(), name));
      }
    }
    for (const auto& [name, type] : types) {
      if (!seen.count(name)) {
        throw NodeError(
            fmt::format("types: '{}' is not a column of '{}' ({})", name, lines_.name(), fmt::join(names_, ", ")));
      }
    }
    for (const auto& name : names_) {
      auto it = types.find(name);
      types_.push_back(it == types.end() ? CellType::text : it->second);
    }
  }

  // Blank lines are skipped. A row with another number of cells than the header is an error naming
  // its line (a column shifted by a stray delimiter would put every value under the wrong name).
  bool next(Record& out) override {
    std::vector<std::string>& cells = cells_;
    if (!row(cells)) return false;
    if (cells.size() != names_.size()) {
      throw NodeError(fmt::format("line {} of '{}' has {} cells, expected {} ({})", first_line_, lines_.name(),
                                  cells.size(), names_.size(), fmt::join(names_, ", ")));
    }
    out.reserve(names_.size());
    for (std::size_t i = 0; i < names_.size(); ++i) out.append(names_[i], typed(i, std::move(cells[i])));
    return true;
  }

 private:
  // The cells of the next row that is not blank. A quoted cell may hold the delimiter, quotes
  // written twice and line breaks; a row is at most LineReader::kMaxLine bytes.
  bool row(std::vector<std::string>& cells) {
    cells.clear();
    std::string_view line;
    do {
      if (!lines_.next(line)) return false;
      if (lines_.line_number() == 1 && (line.starts_with("\xFF\xFE") || line.starts_with("\xFE\xFF"))) {
        throw NodeError(
            fmt::format("'{}' is UTF-16 (Excel's \"Unicode text\"): save it as \"CSV UTF-8\"", lines_.name()));
      }
      if (line.ends_with('\r')) line.remove_suffix(1);
    } while (line.empty());
    first_line_ = lines_.line_number();
    std::string cell;
    std::size_t bytes = 0;
    bool quoted = false;      // inside a quoted cell
    bool was_quoted = false;  // the current cell started with a quote
    while (true) {
      for (std::size_t i = 0; i < line.size(); ++i) {
        const char c = line[i];
        if (quoted) {
          if (c != '"') {
            cell.push_back(c);
          } else if (i + 1 < line.size() && line[i + 1] == '"') {
            cell.push_back('"');
            ++i;
          } else {
            quoted = false;
          }
        } else if (c == delimiter_) {
          cells.push_back(std::move(cell));
          cell.clear();
          was_quoted = false;
        } else if (c == '"' && cell.empty() && !was_quoted) {
          quoted = was_quoted = true;
        } else {
          cell.push_back(c);  // a quote inside an unquoted cell is kept, as spreadsheets read it
        }
      }
      if (!quoted) break;
      // A line break inside a quoted cell: the row goes on on the next line.
      bytes += line.size() + 1;
      if (bytes > LineReader::kMaxLine) {
        throw NodeError(
            fmt::format("the row from line {} of '{}' is longer than {} MiB: a quote that is never "
                        "closed?",
                        first_line_, lines_.name(), LineReader::kMaxLine >> 20));
      }
      if (!lines_.next(line)) {
        throw NodeError(fmt::format("line {} of '{}': a quoted cell is not closed before the end of the file",
                                    first_line_, lines_.name()));
      }
      if (line.ends_with('\r')) line.remove_suffix(1);
      cell.push_back('\n');
    }
    cells.push_back(std::move(cell));
    return true;
  }

  // A typed column's cell: empty is null; anything but a number (or a date) is an error naming line
  // and column.
  Value typed(std::size_t i, std::string cell) const {
    if (types_[i] == CellType::text) return Value(std::move(cell));
    const std::string_view t = nodes::trim(cell, " \t");
    if (t.empty()) return Value();
    if (types_[i] == CellType::date) {
      if (auto date = parse::read_date(t, order_)) {
        return Value(zone_ ? parse::local_to_utc(*date, *zone_) : std::move(*date));
      }
      const bool either_way = order_ == parse::DateOrder::unset && parse::read_date(t, parse::DateOrder::dmy);
      throw NodeError(fmt::format("line {} of '{}', column '{}': '{}' is not a date{}", first_line_, lines_.name(),
                                  names_[i], cell, either_way ? fmt::format(" ({})", parse::kDateOrderHint) : ""));
    }
    if (types_[i] == CellType::integer) {
      std::int64_t n = 0;
      auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), n);
      if (ec == std::errc() && end == t.data() + t.size()) return Value(n);
    } else {
      double d = 0;
      auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), d);
      if (ec == std::errc() && end == t.data() + t.size()) return Value(d);
    }
    throw NodeError(fmt::format("line {} of '{}', column '{}': '{}' is not {}", first_line_, lines_.name(), names_[i],
                                cell, types_[i] == CellType::integer ? "an integer" : "a number"));
  }

  LineReader lines_;
  char delimiter_;
  std::vector<std::string> names_;
  std::vector<CellType> types_;
  parse::DateOrder order_;
  std::shared_ptr<const parse::TimeZone> zone_;  // time_zone: local times given in UTC
  std::vector<std::string> cells_;
  std::size_t first_line_ = 0;  // where the current row starts
};

void check(const Config& c, const Location& owner, Diagnostics& diags) {
  if (c.has("header") && !c.boolean("header") && c.list("fields").empty()) {
    diags.error(owner, "source.csv with 'header: false' needs 'fields': the names of the columns");
  }
  bool dates = false;
  for (const auto& [name, type] : c.map("types")) dates = dates || std::get<Value>(type.v).to_text() == "date";
  for (const char* option : {"date_order", "time_zone"}) {
    if (c.has(option) && !dates) {
      diags.error(c.where(option),
                  fmt::format("{} is for the columns that types reads as dates, and there are none", option));
    }
  }
  parse::check_time_zone(c, diags);
}

}  // namespace

NodeType source_csv_type() {
  NodeType t;
  t.name = "source.csv";
  t.kind = NodeKind::source;
  t.summary = "emits the rows of a CSV file (RFC 4180), one field per column, named by the header line";
  t.ports = {{"out", PortDirection::output, "one record per row"}};
  t.schema = Schema(
      {
          FieldSpec::string("path",
                            "the CSV file, read lazily (a gzip file as the text it holds); '-' reads standard input")
              .make_required(),
          FieldSpec::string("delimiter", "the character between cells: ',' or a tab (\"\\t\") or ';'")
              .with_default(",")
              .validated_by(check_csv_delimiter),
          FieldSpec::boolean("header", "the first line names the columns").with_default("true"),
          FieldSpec::list("fields", FieldSpec::string("name", "a field name"),
                          "names for the columns, in order, instead of the header's (needed without a header)")
              .with_default(""),
          FieldSpec::map("types",
                         FieldSpec::enumeration("type", {"text", "int", "integer", "number", "date"}, "a cell type"),
                         "column -> integer (or int), number, or date: ISO 8601 text of a date written as parse.html's "
                         "type: date reads it (\"March 5, 2026\", \"05.03.2026\" with date_order); an empty cell "
                         "is null, any other that is none fails the run; other columns are text")
              .with_default(""),
          FieldSpec::enumeration("date_order", {"dmy", "mdy"},
                                 "how a date column reads a date in numbers only: dmy (\"05/03/2026\" is 5 March) or "
                                 "mdy (May 3); unset, only one whose day is above 12 is read"),
          parse::field_time_zone_spec("the columns types reads as dates"),
      },
      check);
  t.factory = [](const NodeContext& ctx) -> std::unique_ptr<Node> {
    const Config& c = ctx.config;
    std::vector<std::string> names;
    for (const auto& f : c.list("fields")) names.push_back(std::get<Value>(f.v).to_text());
    std::map<std::string, CellType> types;
    for (const auto& [name, type] : c.map("types")) {
      const std::string text = std::get<Value>(type.v).to_text();
      types[name] = text == "int" || text == "integer" ? CellType::integer
                    : text == "number"                 ? CellType::number
                    : text == "date"                   ? CellType::date
                                                       : CellType::text;
    }
    return std::make_unique<CsvRows>(c.string("path"), c.string("delimiter")[0], c.boolean("header"), std::move(names),
                                     std::move(types), parse::date_order_of(c), parse::time_zone_of(c), ctx.stop,
                                     ctx.idle);
  };
  t.example = R"(- id: products
  type: source.csv
  path: products.csv          # sku,url,category
  types: {rank: integer})";
  return t;
}

}  // namespace sluice::nodes
