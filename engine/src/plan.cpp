#include <fmt/format.h>

#include <charconv>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <tuple>

#include "sluice/pipeline.hpp"

namespace sluice {

const Schema& settings_schema() {
  static const Schema schema({
      FieldSpec::integer("batch", "records per batch a source emits").with_default("256").at_least(1),
      FieldSpec::integer("max_pending", "batches per source in flight before the source waits")
          .with_default("16")
          .at_least(1),
      FieldSpec::integer("threads", "TBB worker threads; 0 uses one per core").with_default("0").at_least(0),
      FieldSpec::duration("shutdown_timeout", "how long a graceful stop may take before in-flight work is aborted")
          .with_default("10s"),
      FieldSpec::duration("abort_timeout",
                          "how long cancelled work may take to end; then sluice stops waiting for a node stuck in "
                          "its own code, and sinks commit what they received")
          .with_default("5s"),
      FieldSpec::duration("max_duration", "stop gracefully after this long, like a signal; the run still succeeds"),
      FieldSpec::integer("max_items", "stop gracefully once sinks have received this many records; 0: no limit")
          .with_default("0")
          .at_least(0),
      FieldSpec::integer("max_errors",
                         "stop gracefully and fail once more than this many records failed in nodes that skip or "
                         "route them (a site that blocks the crawler); default: no bound")
          .at_least(0),
      FieldSpec::string(
          "serve",
          "a folder `sluice run` and `sluice test` serve over HTTP on a free loopback port while "
          "the pipeline runs (relative to the pipeline file); its URL is ${SERVE_URL} (run --resume: the port "
          "of the run it continues)"),
      FieldSpec::string("state",
                        "a SQLite file that records the run's progress, so that `sluice run --resume` continues "
                        "an interrupted run; stores then need a key"),
  });
  return schema;
}

bool parse_count_range(std::string_view text, std::int64_t& low, std::int64_t& high) {
  auto number = [](std::string_view s, std::int64_t& out) {
    if (s.empty()) return false;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && end == s.data() + s.size() && out >= 0;
  };
  auto dots = text.find("..");
  if (dots == std::string_view::npos) {
    if (!number(text, low)) return false;
    high = low;
    return true;
  }
  std::string_view a = text.substr(0, dots), b = text.substr(dots + 2);
  low = 0;
  high = std::numeric_limits<std::int64_t>::max();
  if (a.empty() && b.empty()) return false;
  if (!a.empty() && !number(a, low)) return false;
  if (!b.empty() && !number(b, high)) return false;
  return low <= high;
}

namespace {

std::string check_count(const Value& v) {
  std::int64_t low, high;
  if (parse_count_range(v.to_text(), low, high)) return "";
  return fmt::format("'{}' is not a count or a range (write 12, 10..20, 10.. or ..20)", v.to_text());
}

}  // namespace

const Schema& expect_schema() {
  auto db = [] {
    return FieldSpec::string("db", "the SQLite file; default: the database of the pipeline's store.sqlite nodes");
  };
  static const Schema schema({
      FieldSpec::list(
          "tables",
          FieldSpec::object_of(
              "table",
              Schema({
                  db(),
                  FieldSpec::string("table", "a table").make_required(),
                  FieldSpec::scalar("rows", "its row count: 12, 10..20, 10.., ..20").validated_by(check_count),
                  FieldSpec::list("required", FieldSpec::string("column", "a column"),
                                  "columns that must be set (not null, not empty) "
                                  "in every row")
                      .with_default(""),
              }),
              "a table to check"),
          "tables: row counts and required columns")
          .with_default(""),
      FieldSpec::list(
          "queries",
          FieldSpec::object_of("query",
                               Schema({
                                   db(),
                                   FieldSpec::string("sql", "a query (the file is opened read-only)").make_required(),
                                   FieldSpec::list("equals", FieldSpec::scalar("row", "a row: a|b|c"),
                                                   "the expected rows, columns joined with |")
                                       .make_required(),
                               }),
                               "a query and its expected rows"),
          "SQL queries with their expected results")
          .with_default(""),
      FieldSpec::list(
          "files",
          FieldSpec::object_of(
              "file",
              Schema({
                  FieldSpec::string("path", "a file the run wrote (sink.jsonl, sink.csv)").make_required(),
                  FieldSpec::scalar("lines", "its count of lines: 13, 10..20, 10.., ..20").validated_by(check_count),
                  FieldSpec::list("contains", FieldSpec::string("text", "a piece of text"),
                                  "texts the file must hold, each somewhere")
                      .with_default(""),
              }),
              "a file to check"),
          "files: line counts and texts they hold")
          .with_default(""),
      FieldSpec::map("errors", FieldSpec::scalar("count", "0, 1..3, ..5").validated_by(check_count),
                     "node id -> its error count: exact or a range")
          .with_default(""),
      FieldSpec::map("dropped", FieldSpec::scalar("count", "0, 1..3, ..5").validated_by(check_count),
                     "node id -> its count of dropped records (seen URLs, work a stop ended): exact or a range")
          .with_default(""),
      FieldSpec::map("warnings", FieldSpec::scalar("count", "0, 1..3, ..5").validated_by(check_count),
                     "node id -> its count of warnings (a selector that found nothing, a column no record had, a "
                     "host's breaker opening): exact or a range")
          .with_default(""),
      FieldSpec::string("status", "how the run ends: succeeded (default), failed or interrupted")
          .with_default("succeeded"),
  });
  return schema;
}

namespace {

const std::vector<std::string> kTopLevelKeys = {"pipeline", "description", "settings", "plugins",
                                                "nodes",    "edges",       "expect"};
const std::vector<std::string> kNodeReservedKeys = {"id", "type", "on_error"};

bool valid_id(std::string_view id) {
  if (id.empty() || !(std::isalpha(static_cast<unsigned char>(id[0])) || id[0] == '_')) return false;
  for (char c : id) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) return false;
  }
  return true;
}

std::string trim(std::string_view s, std::size_t& offset) {
  std::size_t b = 0;
  while (b < s.size() && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  std::size_t e = s.size();
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  offset += b;
  return std::string(s.substr(b, e - b));
}

struct Endpoint {
  std::string node;
  std::string port;  // empty: the default for the side
  Location where;
};

class Planner {
 public:
  Planner(const std::string& file, const Registry& registry, Diagnostics& diags)
      : file_(file), registry_(registry), diags_(diags) {}

  std::optional<Plan> plan(const SpecNode& root, const LoadOptions& options) {
    Location top{file_, 1, 1};
    if (!root.is_map()) {
      diags_.error(root.where.known() ? root.where : top,
                   fmt::format("a pipeline must be a map with 'nodes' and 'edges', got {}", root.describe()));
      return std::nullopt;
    }
    for (const auto& [key, value] : root.entries) {
      if (std::find(kTopLevelKeys.begin(), kTopLevelKeys.end(), key.scalar) != kTopLevelKeys.end()) continue;
      // x-anything: a place for anchors that nodes merge (x-fetch: &fetch {...}, then <<: *fetch),
      // as Compose files have; sluice reads nothing in it.
      if (key.scalar.starts_with("x-")) continue;
      std::string hint = closest_match(key.scalar, kTopLevelKeys);
      diags_.error(key.where, hint.empty()
                                  ? fmt::format("unknown top-level key '{}' (allowed keys: {}, and names that start "
                                                "with 'x-' for anchors to merge: 'x-defaults: &defaults {{...}}')",
                                                key.scalar, quoted_list(kTopLevelKeys))
                                  : fmt::format("unknown top-level key '{}' (did you mean '{}'?)", key.scalar, hint));
    }
    plan_.file = file_;
    read_settings(root, options);
    const SpecNode* nodes = root.find("nodes");
    if (!nodes) {
      diags_.error(top, "missing required key 'nodes' (the list of nodes)");
    } else if (!nodes->is_sequence()) {
      diags_.error(nodes->where, fmt::format("'nodes' must be a list of nodes, got {}", nodes->describe()));
    } else {
      for (const auto& item : nodes->items) read_node(item, options);
    }
    for (const auto& [key, value] : options.overrides) {
      const std::string id = key.substr(0, key.find('.'));
      if (id.size() < key.size() && !ids_.count(id) && !bad_ids_.count(id)) {
        diags_.error(Location{"--set " + key, 0, 0}, fmt::format("no node '{}' in this pipeline", id));
      }
    }
    const SpecNode* edges = root.find("edges");
    if (edges && !edges->is_sequence()) {
      diags_.error(edges->where, fmt::format("'edges' must be a list, got {}", edges->describe()));
    } else if (edges) {
      for (const auto& item : edges->items) read_edge(item);
    }
    if (nodes && nodes->is_sequence()) check_graph(*nodes);
    check_outputs_are_not_inputs();
    read_plugins(root);
    read_expect(root);
    if (!diags_.empty()) return std::nullopt;
    return std::move(plan_);
  }

 private:
  void read_plugins(const SpecNode& root) {
    const SpecNode* plugins = root.find("plugins");
    if (!plugins || plugins->is_null()) return;
    if (!plugins->is_sequence()) {
      diags_.error(plugins->where,
                   fmt::format("'plugins' must be a list of shared library paths, got {}", plugins->describe()));
      return;
    }
    for (const auto& item : plugins->items) {
      if (!item.is_scalar()) {
        diags_.error(item.where, fmt::format("a plugin must be a path, got {}", item.describe()));
        continue;
      }
      plan_.plugins.push_back(item.scalar);
    }
  }

  void read_expect(const SpecNode& root) {
    const SpecNode* expect = root.find("expect");
    if (!expect) return;
    if (!expect->is_map()) {
      diags_.error(expect->where, fmt::format("'expect' must be a map, got {}", expect->describe()));
      return;
    }
    Config c = expect_schema().validate(*expect, expect->where, "expect", {}, diags_, "expect.");
    // An invalid field is reported already and absent from c.
    for (const char* counts : {"errors", "dropped", "warnings"}) {
      if (!c.has(counts)) continue;
      for (const auto& entry : c.map(counts)) {
        const std::string& id = entry.first;
        bool known = std::any_of(plan_.nodes.begin(), plan_.nodes.end(), [&](const PlanNode& n) { return n.id == id; });
        if (!known)
          diags_.error(entry.second.where, fmt::format("expect.{}: no node '{}' in this pipeline", counts, id));
      }
    }
    const std::string status = c.has("status") ? c.string("status") : "succeeded";
    if (status != "succeeded" && status != "failed" && status != "interrupted") {
      diags_.error(c.where("status"),
                   fmt::format("expect.status: '{}' is not one of succeeded, failed, interrupted", status));
    }
    plan_.expect = std::move(c);
  }

  void read_settings(const SpecNode& root, const LoadOptions& options) {
    SpecNode settings;
    settings.kind = SpecNode::Kind::map;
    settings.where = Location{file_, 1, 1};
    if (const SpecNode* s = root.find("settings")) {
      if (s->is_map()) {
        settings = *s;
      } else if (!s->is_null()) {
        diags_.error(s->where, fmt::format("'settings' must be a map, got {}", s->describe()));
      }
    }
    for (const auto& [key, value] : options.overrides) {
      if (key.find('.') != std::string::npos) continue;  // a node's: id.key
      SpecNode k;
      k.kind = SpecNode::Kind::scalar;
      k.scalar = key;
      k.where = Location{"--set " + key, 0, 0};
      SpecNode v = k;
      v.scalar = value;
      bool replaced = false;
      for (auto& entry : settings.entries) {
        if (entry.first.scalar == key) {
          entry.second = v;
          replaced = true;
        }
      }
      if (!replaced) settings.entries.emplace_back(std::move(k), std::move(v));
    }
    Config c = settings_schema().validate(settings, settings.where, "settings", {}, diags_);
    auto& s = plan_.settings;
    if (c.has("batch")) s.batch = c.integer("batch");
    if (c.has("max_pending")) s.max_pending = c.integer("max_pending");
    if (c.has("threads")) s.threads = c.integer("threads");
    if (c.has("shutdown_timeout")) s.shutdown_timeout = c.duration("shutdown_timeout");
    if (c.has("abort_timeout")) {
      s.abort_timeout = c.duration("abort_timeout");
      // A shorter one would give up on nodes that are ending normally after a failure.
      if (s.abort_timeout < std::chrono::milliseconds(100)) {
        diags_.error(c.where("abort_timeout"),
                     fmt::format("abort_timeout: must be at least 100ms, got {}", duration_text(s.abort_timeout)));
      }
    }
    if (c.has("max_duration")) s.max_duration = c.duration("max_duration");
    if (c.has("max_items")) s.max_items = c.integer("max_items");
    if (c.has("max_errors")) s.max_errors = c.integer("max_errors");
    if (c.has("state")) s.state = c.string("state");
    if (c.has("serve")) s.serve = c.string("serve");
    if (const SpecNode* name = root.find("pipeline"); name && name->is_scalar()) {
      s.name = name->scalar;
    } else {
      if (name) diags_.error(name->where, fmt::format("'pipeline' must be a name, got {}", name->describe()));
      std::string base = file_.substr(file_.find_last_of('/') + 1);
      s.name = base.substr(0, base.find_last_of('.'));
    }
  }

  // `written`, or a copy of it in `copy` with the command line's `--set ID.KEY=VALUE` overrides of
  // its id applied: KEY may be a path into nested maps (retries.attempts), and VALUE a YAML scalar
  // or flow list or map.
  const SpecNode& with_overrides(const SpecNode& written, const LoadOptions& options, SpecNode& copy) {
    const SpecNode* id = written.find("id");
    if (!id || !id->is_scalar()) return written;
    const std::string prefix = id->scalar + ".";
    bool any = false;
    for (const auto& [key, value] : options.overrides) {
      if (!key.starts_with(prefix)) continue;
      if (!any) copy = written;
      any = true;
      const Location where{"--set " + key, 0, 0};
      const std::string path = key.substr(prefix.size());
      if (path.empty() || path == "id" || path == "type" || path.starts_with("id.") || path.starts_with("type.")) {
        diags_.error(where, "a node's id and type cannot be set from the command line");
        continue;
      }
      SpecNode parsed;
      if (value.starts_with('[') || value.starts_with('{')) {
        const std::size_t errors = diags_.items().size();
        parsed = parse_spec(value, "--set " + key, options.env, diags_);
        if (diags_.items().size() > errors) continue;  // said; the node's checks would only add "got null"
      } else {
        parsed.kind = SpecNode::Kind::scalar;
        parsed.scalar = value;
      }
      set_path(copy, path, std::move(parsed), where);
    }
    return any ? copy : written;
  }

  static void set_path(SpecNode& map, std::string_view path, SpecNode value, const Location& where) {
    const auto dot = path.find('.');
    const std::string name(path.substr(0, dot));
    SpecNode* slot = nullptr;
    for (auto& [k, v] : map.entries) {
      if (k.scalar == name) slot = &v;
    }
    if (!slot) {
      SpecNode k;
      k.kind = SpecNode::Kind::scalar;
      k.scalar = name;
      k.where = where;
      map.entries.emplace_back(std::move(k), SpecNode{});
      slot = &map.entries.back().second;
    }
    if (dot == std::string_view::npos) {
      *slot = std::move(value);
      slot->where = where;
      return;
    }
    if (!slot->is_map()) {
      *slot = SpecNode{};
      slot->kind = SpecNode::Kind::map;
      slot->where = where;
    }
    set_path(*slot, path.substr(dot + 1), std::move(value), where);
  }

  void read_node(const SpecNode& written, const LoadOptions& options) {
    if (!written.is_map()) {
      diags_.error(written.where, fmt::format("a node must be a map with 'id' and 'type', got {}", written.describe()));
      return;
    }
    SpecNode copy;
    const SpecNode& item = with_overrides(written, options, copy);
    const SpecNode* id = item.find("id");
    const SpecNode* type = item.find("type");
    bool ok = true;
    if (!id) {
      diags_.error(item.where, "node without 'id'");
      ok = false;
    } else if (!id->is_scalar() || !valid_id(id->scalar)) {
      diags_.error(id->where, fmt::format("invalid node id {} (use letters, digits, '_' and '-', starting with a "
                                          "letter)",
                                          id->describe()));
      ok = false;
    } else if (auto it = ids_.find(id->scalar); it != ids_.end()) {
      diags_.error(id->where, fmt::format("duplicate node id '{}' (first defined at line {})", id->scalar,
                                          plan_.nodes[it->second].where.line));
      ok = false;
    }
    const NodeType* node_type = nullptr;
    if (!type) {
      diags_.error(item.where, fmt::format("node '{}' has no 'type'", id && id->is_scalar() ? id->scalar : "?"));
    } else if (!type->is_scalar()) {
      diags_.error(type->where, fmt::format("'type' must be a node type name, got {}", type->describe()));
    } else if (!(node_type = registry_.find(type->scalar))) {
      std::string hint = closest_match(type->scalar, registry_.names());
      diags_.error(type->where, hint.empty()
                                    ? fmt::format("unknown node type '{}' (known types: {})", type->scalar,
                                                  quoted_list(registry_.names()))
                                    : fmt::format("unknown node type '{}' (did you mean '{}'?)", type->scalar, hint));
    }
    std::string name = id && id->is_scalar() ? id->scalar : "?";
    PlanNode node;
    node.id = name;
    node.where = id && ok ? id->where : item.where;
    node.type = node_type;
    if (const SpecNode* on_error = item.find("on_error")) {
      static const FieldSpec kOnError =
          FieldSpec::enumeration("on_error", {"fail", "skip", "route"}, "what a failed record does");
      std::vector<std::string> choices = kOnError.choices;
      if (!on_error->is_scalar() || std::find(choices.begin(), choices.end(), on_error->scalar) == choices.end()) {
        std::string hint = on_error->is_scalar() ? closest_match(on_error->scalar, choices) : "";
        diags_.error(on_error->where,
                     fmt::format("on_error: {} is not one of {}{}", on_error->describe(), quoted_list(choices),
                                 hint.empty() ? "" : fmt::format(" (did you mean '{}'?)", hint)));
      } else {
        node.on_error = on_error->scalar == "fail"   ? OnError::fail
                        : on_error->scalar == "skip" ? OnError::skip
                                                     : OnError::route;
        if (node.on_error == OnError::route && node_type && node_type->output_index("error") < 0) {
          diags_.error(on_error->where, fmt::format("on_error: route needs an 'error' port, and {} has none "
                                                    "(use fail or skip)",
                                                    node_type->name));
          node.on_error = OnError::fail;
        }
      }
    }
    if (node_type) {
      node.config = node_type->schema.validate(item, item.where, fmt::format("node '{}' ({})", name, node_type->name),
                                               kNodeReservedKeys, diags_);
    }
    if (!ok) {
      if (id && id->is_scalar()) bad_ids_.insert(id->scalar);
      return;
    }
    ids_[name] = plan_.nodes.size();
    plan_.nodes.push_back(std::move(node));
  }

  std::optional<Endpoint> parse_endpoint(const std::string& text, const Location& where) {
    Endpoint e;
    e.where = where;
    auto dot = text.find('.');
    e.node = text.substr(0, dot);
    if (dot != std::string::npos) e.port = text.substr(dot + 1);
    if (e.node.empty() || (dot != std::string::npos && e.port.empty())) {
      diags_.error(where, fmt::format("invalid edge endpoint '{}' (write node or node.port)", text));
      return std::nullopt;
    }
    return e;
  }

  // Resolves a node id used in an edge; nullopt (with a diagnostic) when unknown.
  std::optional<std::size_t> resolve(const Endpoint& e) {
    auto it = ids_.find(e.node);
    if (it != ids_.end()) return it->second;
    if (bad_ids_.count(e.node)) return std::nullopt;
    std::vector<std::string> known;
    for (const auto& [id, index] : ids_) known.push_back(id);
    std::string hint = closest_match(e.node, known);
    diags_.error(e.where, hint.empty()
                              ? fmt::format("edge refers to unknown node '{}'", e.node)
                              : fmt::format("edge refers to unknown node '{}' (did you mean '{}'?)", e.node, hint));
    return std::nullopt;
  }

  std::optional<std::string> check_port(std::size_t index, const Endpoint& e, PortDirection direction) {
    const PlanNode& node = plan_.nodes[index];
    const NodeType* type = node.type;
    // Unknown type (already reported): accept the edge so that it causes no follow-on errors.
    if (!type) return e.port.empty() ? std::string(direction == PortDirection::output ? "out" : "in") : e.port;
    auto wanted = type->port_names(direction);
    std::string port = e.port;
    const bool out = direction == PortDirection::output;
    if (port.empty()) {
      if (wanted.empty()) {
        diags_.error(e.where, out ? fmt::format("node '{}' ({}) is a sink and has no output port", node.id, type->name)
                                  : fmt::format("node '{}' ({}) is a source and takes no input", node.id, type->name));
        return std::nullopt;
      }
      port = wanted.front();
    }
    const PortSpec* spec = type->find_port(port);
    if (!spec) {
      std::string hint = closest_match(port, wanted);
      diags_.error(e.where, fmt::format("node '{}' ({}) has no port '{}'{}", node.id, type->name, port,
                                        hint.empty() ? fmt::format(" ({} ports: {})", out ? "output" : "input",
                                                                   wanted.empty() ? "none" : quoted_list(wanted))
                                                     : fmt::format(" (did you mean '{}'?)", hint)));
      return std::nullopt;
    }
    if (spec->direction != direction) {
      diags_.error(e.where,
                   fmt::format("'{}.{}' is an {} port; an edge must {} at an {} port ({} ports of '{}': {})", node.id,
                               port, out ? "input" : "output", out ? "start" : "end", out ? "output" : "input",
                               out ? "output" : "input", node.id, wanted.empty() ? "none" : quoted_list(wanted)));
      return std::nullopt;
    }
    return port;
  }

  void add_edge(const Endpoint& from, const Endpoint& to, const Location& where) {
    auto a = resolve(from);
    auto b = resolve(to);
    std::optional<std::string> from_port, to_port;
    if (a) from_port = check_port(*a, from, PortDirection::output);
    if (b) to_port = check_port(*b, to, PortDirection::input);
    if (!from_port || !to_port) {
      // The valid end still counts as connected, so that one mistake is not echoed as "not connected".
      if (from_port) broken_edge_ends_.emplace_back(*a, *from_port, PortDirection::output);
      if (to_port) broken_edge_ends_.emplace_back(*b, *to_port, PortDirection::input);
      return;
    }
    for (const auto& e : plan_.edges) {
      if (e.from_node == *a && e.from_port == *from_port && e.to_node == *b && e.to_port == *to_port) {
        diags_.error(where, fmt::format("duplicate edge {}.{} -> {}.{} (first at line {})", from.node, *from_port,
                                        to.node, *to_port, e.where.line));
        return;
      }
    }
    plan_.edges.push_back(PlanEdge{*a, *from_port, *b, *to_port, where});
  }

  void read_edge(const SpecNode& item) {
    if (item.is_map()) {
      for (const auto& [key, value] : item.entries) {
        if (key.scalar != "from" && key.scalar != "to") {
          diags_.error(key.where, fmt::format("unknown key '{}' in edge (allowed keys: 'from', 'to')", key.scalar));
        }
      }
      const SpecNode* from = item.find("from");
      const SpecNode* to = item.find("to");
      if (!from || !to) {
        diags_.error(item.where, fmt::format("edge needs both 'from' and 'to'"));
        return;
      }
      std::vector<Endpoint> sides;
      for (const SpecNode* n : {from, to}) {
        if (!n->is_scalar()) {
          diags_.error(n->where, fmt::format("edge endpoint must be node or node.port, got {}", n->describe()));
          return;
        }
        auto e = parse_endpoint(n->scalar, n->where);
        if (!e) return;
        sides.push_back(*e);
      }
      add_edge(sides[0], sides[1], item.where);
      return;
    }
    if (!item.is_scalar()) {
      diags_.error(item.where, fmt::format("an edge is a chain 'a -> b -> c' or a map with 'from' and 'to', got {}",
                                           item.describe()));
      return;
    }
    std::vector<Endpoint> chain;
    const std::string& text = item.scalar;
    std::size_t start = 0;
    bool ok = true;
    while (true) {
      std::size_t arrow = text.find("->", start);
      std::string_view piece =
          std::string_view(text).substr(start, arrow == std::string::npos ? std::string::npos : arrow - start);
      std::size_t offset = start;
      std::string name = trim(piece, offset);
      Location where = item.where;
      where.column += static_cast<int>(offset) + (item.quoted ? 1 : 0);
      if (name.empty()) {
        diags_.error(where, fmt::format("empty step in edge chain '{}'", text));
        ok = false;
      } else if (auto e = parse_endpoint(name, where)) {
        chain.push_back(*e);
      } else {
        ok = false;
      }
      if (arrow == std::string::npos) break;
      start = arrow + 2;
    }
    if (!ok) return;
    if (chain.size() < 2) {
      diags_.error(item.where, fmt::format("edge '{}' needs at least two nodes joined by '->'", text));
      return;
    }
    for (std::size_t i = 1; i + 1 < chain.size(); ++i) {
      if (!chain[i].port.empty()) {
        diags_.error(chain[i].where, fmt::format("'{}.{}': ports can be named only at the ends of a chain; use a "
                                                 "separate edge",
                                                 chain[i].node, chain[i].port));
        return;
      }
    }
    for (std::size_t i = 0; i + 1 < chain.size(); ++i) {
      Endpoint from = chain[i];
      Endpoint to = chain[i + 1];
      if (i > 0) from.port.clear();
      if (i + 2 < chain.size()) to.port.clear();
      add_edge(from, to, item.where);
    }
  }

  // A sink that writes the file a source reads would destroy the input (sink.jsonl truncates its
  // file when the run starts: measured, the URL list was empty before the source read it) or, with
  // append: true, mix its output into its own input.
  void check_outputs_are_not_inputs() {
    auto path_of = [](const PlanNode& n, const char* field) -> std::optional<std::filesystem::path> {
      if (!n.config.has(field)) return std::nullopt;
      const Value value = n.config.scalar(field);
      const std::string* text = value.as_string();
      if (!text || text->empty() || *text == "-" || *text == ":memory:") return std::nullopt;
      std::error_code ec;
      auto canonical = std::filesystem::weakly_canonical(*text, ec);
      return ec ? std::filesystem::path(*text) : canonical;
    };
    for (const auto& source : plan_.nodes) {
      if (!source.type || source.type->kind != NodeKind::source) continue;
      auto input = path_of(source, "file");
      if (!input) continue;
      for (const auto& sink : plan_.nodes) {
        if (!sink.type || sink.type->kind != NodeKind::sink) continue;
        if (auto output = path_of(sink, "path"); output && *output == *input) {
          diags_.error(sink.config.where("path"),
                       fmt::format("node '{}' writes '{}', the file that source '{}' reads: it would destroy its "
                                   "input; write the output elsewhere",
                                   sink.id, sink.config.scalar("path").to_text(), source.id));
        }
      }
    }
  }

  void check_graph(const SpecNode& nodes) {
    bool has_source = false;
    bool unknown_types = false;
    std::vector<bool> incoming(plan_.nodes.size()), outgoing(plan_.nodes.size());
    std::map<std::pair<std::size_t, std::string>, bool> connected;
    for (const auto& e : plan_.edges) {
      outgoing[e.from_node] = true;
      incoming[e.to_node] = true;
      connected[{e.from_node, e.from_port}] = true;
    }
    for (const auto& [node, port, direction] : broken_edge_ends_) {
      if (direction == PortDirection::output) {
        outgoing[node] = true;
        connected[{node, port}] = true;
      } else {
        incoming[node] = true;
      }
    }
    for (std::size_t i = 0; i < plan_.nodes.size(); ++i) {
      const PlanNode& n = plan_.nodes[i];
      if (!n.type) {
        unknown_types = true;
        continue;
      }
      if (n.type->kind == NodeKind::source) has_source = true;
      if (!incoming[i] && !outgoing[i]) {
        diags_.error(n.where, fmt::format("node '{}' is not connected: no edge starts or ends at it", n.id));
        continue;
      }
      if (n.type->kind != NodeKind::source && !incoming[i]) {
        diags_.error(n.where, fmt::format("node '{}' has no input: no edge ends at '{}.{}'", n.id, n.id,
                                          n.type->port_names(PortDirection::input).front()));
      }
      auto outputs = n.type->port_names(PortDirection::output);
      if (!outputs.empty() && !connected.count({i, outputs.front()})) {
        diags_.error(n.where, fmt::format("output '{}.{}' is not connected: its records would be lost (an edge to a "
                                          "'drop' node discards them on purpose)",
                                          n.id, outputs.front()));
      }
      if (n.on_error == OnError::route && !connected.count({i, "error"})) {
        diags_.error(n.where,
                     fmt::format("node '{}' has on_error: route, but '{}.error' is not connected", n.id, n.id));
      }
    }
    if (!unknown_types) check_cycles();
    if (!has_source && !unknown_types && !plan_.nodes.empty()) {
      diags_.error(nodes.where,
                   "pipeline has no source node: nothing would produce records (add e.g. a "
                   "'source.list' node)");
    }
    if (nodes.items.empty()) diags_.error(nodes.where, "'nodes' is empty");
  }

  // Every cycle of edges must pass through a node that breaks cycles (NodeType::breaks_cycles: a
  // frontier). One error per cycle without one (a strongly connected component, Tarjan's algorithm),
  // at the first of its edges in the file.
  void check_cycles() {
    const std::size_t n = plan_.nodes.size();
    std::vector<std::vector<std::size_t>> next(n);
    for (const auto& e : plan_.edges) next[e.from_node].push_back(e.to_node);
    std::vector<int> index(n, -1), low(n, 0);
    std::vector<bool> on_stack(n, false);
    std::vector<std::size_t> stack;
    int counter = 0;
    // Iterative: a pipeline may have many nodes; (node, next edge to look at) frames.
    for (std::size_t root = 0; root < n; ++root) {
      if (index[root] >= 0) continue;
      std::vector<std::pair<std::size_t, std::size_t>> frames{{root, 0}};
      index[root] = low[root] = counter++;
      stack.push_back(root);
      on_stack[root] = true;
      while (!frames.empty()) {
        auto& [v, i] = frames.back();
        if (i < next[v].size()) {
          const std::size_t w = next[v][i++];
          if (index[w] < 0) {
            index[w] = low[w] = counter++;
            stack.push_back(w);
            on_stack[w] = true;
            frames.emplace_back(w, 0);
          } else if (on_stack[w]) {
            low[v] = std::min(low[v], index[w]);
          }
          continue;
        }
        const std::size_t done = v;
        frames.pop_back();
        if (!frames.empty()) low[frames.back().first] = std::min(low[frames.back().first], low[done]);
        if (low[done] != index[done]) continue;
        std::vector<std::size_t> component;
        std::size_t w;
        do {
          w = stack.back();
          stack.pop_back();
          on_stack[w] = false;
          component.push_back(w);
        } while (w != done);
        report_cycle(component);
      }
    }
  }

  void report_cycle(std::vector<std::size_t> component) {
    std::sort(component.begin(), component.end());
    auto inside = [&](std::size_t node) { return std::binary_search(component.begin(), component.end(), node); };
    const PlanEdge* first = nullptr;
    for (const auto& e : plan_.edges) {
      if (inside(e.from_node) && inside(e.to_node) &&
          (!first || std::pair(e.where.line, e.where.column) < std::pair(first->where.line, first->where.column)))
        first = &e;
    }
    if (!first) return;  // one node without an edge to itself: no cycle
    std::string names;
    for (std::size_t node : component) {
      if (plan_.nodes[node].type->breaks_cycles) return;
      names += fmt::format("{}'{}'", names.empty() ? "" : ", ", plan_.nodes[node].id);
    }
    diags_.error(first->where,
                 fmt::format("the edges between {} form a cycle without a frontier: its records would circle "
                             "forever, or wait at a limit for slots that the records they came from hold; route "
                             "the cycle through a frontier (parse.links -> frontier -> limit), which drops URLs it "
                             "has seen and parks new ones without their page's slot",
                             names));
  }

  const std::string& file_;
  const Registry& registry_;
  Diagnostics& diags_;
  Plan plan_;
  std::map<std::string, std::size_t> ids_;
  std::set<std::string> bad_ids_;
  // Ends of edges dropped for an error at their other end.
  std::vector<std::tuple<std::size_t, std::string, PortDirection>> broken_edge_ends_;
};

}  // namespace

std::optional<Plan> load_pipeline_text(std::string_view text, const std::string& file, const Registry& registry,
                                       const LoadOptions& options, Diagnostics& diags) {
  SpecNode root = parse_spec(text, file, options.env, diags);
  if (!diags.empty() && root.is_null()) return std::nullopt;
  Planner planner(file, registry, diags);
  auto plan = planner.plan(root, options);
  diags.sort();
  if (!diags.empty()) return std::nullopt;
  return plan;
}

std::optional<std::string> read_pipeline_file(const std::string& path, Diagnostics& diags) {
  constexpr std::size_t kMaxPipelineBytes = 4 << 20;
  const Location where{path, 0, 0};
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    diags.error(where, "cannot read pipeline file: it is a directory");
    return std::nullopt;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    diags.error(where, fmt::format("cannot read pipeline file: {}", std::strerror(errno)));
    return std::nullopt;
  }
  std::string text;
  char chunk[1 << 16];
  while (in.read(chunk, sizeof chunk) || in.gcount() > 0) {
    text.append(chunk, static_cast<std::size_t>(in.gcount()));
    if (text.size() > kMaxPipelineBytes) {
      diags.error(where, fmt::format("cannot read pipeline file: larger than {} MiB", kMaxPipelineBytes >> 20));
      return std::nullopt;
    }
  }
  if (in.bad()) {
    diags.error(where, fmt::format("cannot read pipeline file: {}", std::strerror(errno)));
    return std::nullopt;
  }
  return text;
}

std::optional<Plan> load_pipeline_file(const std::string& path, const Registry& registry, const LoadOptions& options,
                                       Diagnostics& diags) {
  auto text = read_pipeline_file(path, diags);
  if (!text) return std::nullopt;
  return load_pipeline_text(*text, path, registry, options, diags);
}

}  // namespace sluice
