// transform.slugify: an example plugin node. Turns a text field into a URL slug:
// "Blue Widget (XL)!" -> "blue-widget-xl" (ASCII is lower-cased, UTF-8 kept). Built with the project and, as docs/writing-nodes.md
// shows, out of tree against an installed sluice.
#include <fmt/format.h>
#include <sluice/plugin.hpp>

#include <cctype>

namespace {

using namespace sluice;

std::string slug(std::string_view text, std::size_t max_length) {
  std::string out;
  for (unsigned char c : text) {
    if (c >= 0x80) {
      out += static_cast<char>(c);  // UTF-8 sequences are kept as they are
    } else if (std::isalnum(c)) {
      out += static_cast<char>(std::tolower(c));
    } else if (!out.empty() && out.back() != '-') {
      out += '-';  // a run of anything else becomes one dash
    }
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  if (out.size() > max_length) {
    out.resize(max_length);
    while (!out.empty() && out.back() == '-') out.pop_back();
  }
  return out;
}

class Slugify final : public TransformNode {
 public:
  Slugify(std::string from, std::string to, std::size_t max_length)
      : from_(std::move(from)), to_(std::move(to)), max_length_(max_length) {}

  // TBB workers, concurrently (the type is parallel): no state is changed here.
  void process(Record& record, Emitter& out) override {
    const Value* text = record.get(from_);
    if (!text || !text->as_string()) {
      out.fail(std::move(record), fmt::format("field '{}' is {}, not a string", from_,
                                              text ? std::string(text->type_name()) : "missing"));
      return;
    }
    record.set(to_, Value(slug(*text->as_string(), max_length_)));
    out.emit(std::move(record));
  }

 private:
  std::string from_, to_;
  std::size_t max_length_;
};

NodeType slugify_type() {
  NodeType t;
  t.name = "transform.slugify";
  t.kind = NodeKind::transform;
  t.summary = "adds a URL slug of a text field (example plugin)";
  t.parallel = true;
  t.ports = {{"in", PortDirection::input, "records"},
             {"out", PortDirection::output, "records with the slug field"},
             {"error", PortDirection::output, "records whose field is not a string (on_error: route)"}};
  t.schema = Schema({
      FieldSpec::string("from", "the text field").with_default("name"),
      FieldSpec::string("to", "the field that receives the slug").with_default("slug"),
      FieldSpec::integer("max_length", "longest slug kept").with_default("80").at_least(1),
  });
  t.factory = [](const NodeContext& ctx) -> std::unique_ptr<Node> {
    const Config& c = ctx.config;
    return std::make_unique<Slugify>(c.string("from"), c.string("to"), static_cast<std::size_t>(c.integer("max_length")));
  };
  t.example = R"(- id: slug
  type: transform.slugify
  from: name
  to: slug)";
  return t;
}

void register_nodes(PluginRegistrar& registrar) { registrar.add(slugify_type()); }

}  // namespace

SLUICE_PLUGIN(register_nodes)
