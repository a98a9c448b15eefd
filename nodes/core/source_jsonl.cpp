// source.jsonl: the lines of a JSON Lines file (what sink.jsonl writes, what most tools export) as
// records, one field per member of each line's object. Read lazily, like source.list's files.
#include <fmt/format.h>

#include <functional>
#include <stop_token>

#include "../builtin.hpp"
#include "../parse/links.hpp"
#include "line_reader.hpp"

namespace sluice::nodes {
namespace {

// A line may hold a whole fetched page (sink.jsonl writes a `body` of up to fetch's max_body, 10 MiB
// by default, and JSON escapes may make it several times longer).
constexpr std::size_t kMaxJsonLine = std::size_t{64} << 20;

class JsonLines final : public SourceNode {
 public:
  JsonLines(const std::string& path, std::stop_token stop, std::function<void()> idle)
      : lines_(path, std::move(stop), std::move(idle), kMaxJsonLine) {}

  // Blank lines are skipped. A line that is not a JSON object fails the run, naming the line: the
  // rest of the file may be cut or not JSON Lines at all.
  bool next(Record& out) override {
    std::string_view line;
    while (lines_.next(line)) {
      if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
      if (std::string problem = parse::set_json_fields(out, line); !problem.empty()) {
        throw NodeError(fmt::format("line {} of '{}': {}", lines_.line_number(), lines_.name(), problem));
      }
      return true;
    }
    return false;
  }

 private:
  LineReader lines_;
};

}  // namespace

NodeType source_jsonl_type() {
  NodeType t;
  t.name = "source.jsonl";
  t.kind = NodeKind::source;
  t.summary = "emits the objects of a JSON Lines file, one record per line, one field per member";
  t.ports = {{"out", PortDirection::output, "one record per line"}};
  t.schema = Schema({
      FieldSpec::string("path",
                        "the JSON Lines file, read lazily (a gzip file as the text it holds); '-' reads standard "
                        "input. Each line is a JSON object (up to 64 MiB); blank lines are skipped")
          .make_required(),
  });
  t.factory = [](const NodeContext& ctx) -> std::unique_ptr<Node> {
    return std::make_unique<JsonLines>(ctx.config.string("path"), ctx.stop, ctx.idle);
  };
  t.example = R"(- id: products
  type: source.jsonl
  path: products.jsonl        # {"sku": "A-1", "url": "https://...", "tags": ["x"]} per line)";
  return t;
}

}  // namespace sluice::nodes
