// sink.jsonl: writes records as JSON Lines to stdout or a file.
#include <chrono>

#include "../builtin.hpp"
#include "file_sink.hpp"
#include "sluice/json.hpp"

namespace sluice::nodes {
namespace {

class JsonLines final : public FileSink {
 public:
  JsonLines(const std::string& path, bool append, std::vector<std::string> fields, std::size_t buffer,
            std::chrono::nanoseconds interval, const NodeContext& ctx)
      : FileSink(path, append, buffer, interval, ctx, Framing::lines), fields_(std::move(fields)) {
    watch(FieldPresence(FieldPresence::of_fields(fields_), "line", "null", ctx.notice));
  }

 private:
  void format(const Record& record, std::string& out) override {
    append_json(out, record, fields_.empty() ? nullptr : &fields_);
    out.push_back('\n');
  }

  std::vector<std::string> fields_;
};

}  // namespace

NodeType sink_jsonl_type() {
  NodeType t;
  t.name = "sink.jsonl";
  t.kind = NodeKind::sink;
  t.summary = "writes each record as one JSON object per line, to stdout or a file";
  t.ports = {{"in", PortDirection::input, "records to write"}};
  t.schema = Schema({
      FieldSpec::string("path",
                        "file to write ('.gz' at its end: gzipped); '-' or /dev/stdout writes to standard output")
          .with_default("-"),
      FieldSpec::boolean("append", "append to an existing file instead of replacing it").with_default("false"),
      FieldSpec::list("fields", FieldSpec::string("name", "a field name"),
                      "write only these fields, in this order (missing ones as null); default: all")
          .with_default(""),
      FieldSpec::size("buffer", "bytes collected before each write to the file").with_default("256KiB"),
      FieldSpec::duration("interval", "the longest a line waits in the buffer before it is written")
          .with_default("200ms"),
  });
  t.factory = [](const NodeContext& ctx) -> std::unique_ptr<Node> {
    const Config& c = ctx.config;
    std::vector<std::string> fields;
    for (const auto& f : c.list("fields")) fields.push_back(std::get<Value>(f.v).to_text());
    return std::make_unique<JsonLines>(c.string("path"), c.boolean("append"), std::move(fields),
                                       static_cast<std::size_t>(c.size("buffer")), c.duration("interval"), ctx);
  };
  t.example = R"(- id: out
  type: sink.jsonl
  path: items.jsonl)";
  return t;
}

}  // namespace sluice::nodes
