#include "sluice/spec.hpp"

#include <fmt/format.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>

#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <unordered_map>

namespace sluice {

SpecNode::SpecNode() = default;
SpecNode::SpecNode(const SpecNode&) = default;
SpecNode::SpecNode(SpecNode&&) noexcept = default;
SpecNode& SpecNode::operator=(const SpecNode&) = default;
SpecNode& SpecNode::operator=(SpecNode&&) noexcept = default;
SpecNode::~SpecNode() = default;

const SpecNode* SpecNode::find(std::string_view key) const {
  if (kind != Kind::map) return nullptr;
  for (const auto& [k, v] : entries) {
    if (k.is_scalar() && k.scalar == key) return &v;
  }
  return nullptr;
}

std::string SpecNode::describe() const {
  switch (kind) {
    case Kind::null:
      return "null";
    case Kind::map:
      return "a map";
    case Kind::sequence:
      return "a list";
    case Kind::scalar:
      return fmt::format("'{}'", scalar);
  }
  return "?";
}

EnvLookup process_env() {
  return [](const std::string& name) -> std::optional<std::string> {
    if (const char* value = std::getenv(name.c_str())) return std::string(value);
    return std::nullopt;
  };
}

namespace {

// A pipeline past the builder's bounds (aliases that expand exponentially, absurd nesting): one
// diagnostic, and the parse stops there instead of exhausting memory or the stack.
struct TooLarge {
  Location where;
  std::string message;
};

// Builds SpecNodes from yaml-cpp parser events; the event API shows every key, so duplicate keys
// (which yaml-cpp's node API drops silently) are seen here.
class SpecBuilder : public YAML::EventHandler {
 public:
  SpecBuilder(const std::string& file, const EnvLookup& env, Diagnostics& diags)
      : file_(file), env_(env), diags_(diags) {}

  SpecNode take_root() { return std::move(root_); }
  bool has_root() const { return has_root_; }

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    SpecNode n;
    n.kind = SpecNode::Kind::null;
    n.where = location(mark);
    count(1, mark);
    add(std::move(n), anchor, 1);
  }

  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    auto it = anchors_.find(anchor);
    if (it == anchors_.end()) {
      SpecNode n;
      n.where = location(mark);
      add(std::move(n), 0, 1);
      return;
    }
    count(it->second.values, mark);  // before the copy: an alias copies its anchor's whole tree
    SpecNode n = it->second.node;
    add(std::move(n), 0, it->second.values);
  }

  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    SpecNode n;
    n.kind = SpecNode::Kind::scalar;
    n.where = location(mark);
    n.quoted = tag != "?";
    n.scalar = substitute(value, n.where);
    count(1, mark);
    add(std::move(n), anchor, 1);
  }

  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    open(SpecNode::Kind::sequence, mark, anchor);
  }

  void OnSequenceEnd() override { close(); }

  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    open(SpecNode::Kind::map, mark, anchor);
  }

  void OnMapEnd() override { close(); }

 private:
  // Far beyond any pipeline, far below what exhausts memory or yaml-cpp's recursion.
  static constexpr std::size_t kMaxValues = 1'000'000;
  static constexpr std::size_t kMaxDepth = 100;

  struct Open {
    SpecNode node;
    YAML::anchor_t anchor;
    SpecNode pending_key;
    bool has_key;
    std::size_t values;                 // in this subtree, aliases expanded
    std::optional<Location> merge_key;  // where this map's '<<' is, if it has one
    std::vector<SpecNode> merged;       // the maps '<<' merges into this one, in order
    // A map's keys and the lines they are on: a duplicate is found without a scan of the keys so
    // far (quadratic: a generated map of 60,000 keys took 20 s).
    std::unordered_map<std::string, std::size_t> lines;
  };
  struct Anchored {
    SpecNode node;
    std::size_t values;
  };

  Location location(const YAML::Mark& mark) const { return Location{file_, mark.line + 1, mark.column + 1}; }

  void count(std::size_t values, const YAML::Mark& mark) {
    values_ += values;
    if (values_ > kMaxValues) {
      throw TooLarge{location(mark),
                     fmt::format("the pipeline has more than {} values (with aliases expanded)", kMaxValues)};
    }
  }

  void open(SpecNode::Kind kind, const YAML::Mark& mark, YAML::anchor_t anchor) {
    if (stack_.size() >= kMaxDepth) {
      throw TooLarge{location(mark), fmt::format("lists and maps nested more than {} deep", kMaxDepth)};
    }
    count(1, mark);
    SpecNode n;
    n.kind = kind;
    n.where = location(mark);
    stack_.push_back(Open{std::move(n), anchor, {}, false, 1, std::nullopt, {}, {}});
  }

  void close() {
    Open done = std::move(stack_.back());
    stack_.pop_back();
    merge(done);
    add(std::move(done.node), done.anchor, done.values);
  }

  // YAML's merge key: `<<: *defaults` (or a list of maps, `<<: [*a, *b]`) adds the keys of those
  // maps that this map does not set itself; of two merged maps with a key, the first one's wins.
  // Shallow, as YAML defines it: a map this one sets (retries: {...}) replaces the merged one.
  void merge(Open& open) {
    for (SpecNode& from : open.merged) {
      for (auto& [key, value] : from.entries) {
        if (!open.lines.emplace(key.scalar, key.where.line).second) continue;
        open.node.entries.emplace_back(std::move(key), std::move(value));
      }
    }
  }

  // The value of a '<<' key: a map, or a list of maps.
  void take_merge(Open& top, const SpecNode& key, SpecNode value) {
    if (top.merge_key) {
      diags_.error(key.where, fmt::format("duplicate key '<<' (first defined at line {}); to merge several maps, "
                                          "list them: '<<: [*a, *b]'",
                                          top.merge_key->line));
      return;
    }
    top.merge_key = key.where;
    auto bad = [&](const SpecNode& n) {
      diags_.error(n.where.known() ? n.where : key.where,
                   fmt::format("'<<' merges a map, or a list of maps, into this one (as in '<<: *defaults'), got {}",
                               n.describe()));
    };
    if (value.is_map()) {
      top.merged.push_back(std::move(value));
    } else if (value.is_sequence()) {
      for (SpecNode& item : value.items) {
        if (item.is_map()) {
          top.merged.push_back(std::move(item));
        } else {
          bad(item);
        }
      }
    } else {
      bad(value);
    }
  }

  void add(SpecNode n, YAML::anchor_t anchor, std::size_t values) {
    if (anchor != 0) anchors_[anchor] = Anchored{n, values};
    if (stack_.empty()) {
      if (!has_root_) {
        root_ = std::move(n);
        has_root_ = true;
      }
      return;
    }
    Open& top = stack_.back();
    top.values += values;
    if (top.node.kind == SpecNode::Kind::sequence) {
      top.node.items.push_back(std::move(n));
      return;
    }
    if (!top.has_key) {
      top.pending_key = std::move(n);
      top.has_key = true;
      return;
    }
    top.has_key = false;
    SpecNode key = std::move(top.pending_key);
    if (!key.is_scalar()) {
      diags_.error(key.where, fmt::format("map keys must be plain names, got {}", key.describe()));
      return;
    }
    if (!key.quoted && key.scalar == "<<") {
      take_merge(top, key, std::move(n));
      return;
    }
    if (auto [at, added] = top.lines.emplace(key.scalar, key.where.line); !added) {
      diags_.error(key.where, fmt::format("duplicate key '{}' (first defined at line {})", key.scalar, at->second));
      return;
    }
    top.node.entries.emplace_back(std::move(key), std::move(n));
  }

  // ${NAME} and ${NAME:-default} from the environment; $${ is a literal ${.
  std::string substitute(const std::string& text, const Location& where) {
    if (text.find('$') == std::string::npos) return text;
    std::string out;
    std::size_t i = 0;
    while (i < text.size()) {
      if (text.compare(i, 3, "$${") == 0) {
        out += "${";
        i += 3;
        continue;
      }
      if (text.compare(i, 2, "${") != 0) {
        out.push_back(text[i++]);
        continue;
      }
      std::size_t end = text.find('}', i + 2);
      if (end == std::string::npos) {
        diags_.error(where, fmt::format("unterminated '${{' in '{}'", text));
        return text;
      }
      std::string body = text.substr(i + 2, end - i - 2);
      std::optional<std::string> fallback;
      if (auto sep = body.find(":-"); sep != std::string::npos) {
        fallback = body.substr(sep + 2);
        body.resize(sep);
      }
      bool valid = !body.empty();
      for (char c : body) valid = valid && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
      if (!valid) {
        diags_.error(where, fmt::format("invalid variable name '{}' in '${{...}}'", body));
      } else if (auto value = env_(body)) {
        out += *value;
      } else if (fallback) {
        out += *fallback;
      } else {
        diags_.error(where, fmt::format("environment variable '{}' is not set (write ${{{}:-default}} "
                                        "to give a default)",
                                        body, body));
      }
      i = end + 1;
    }
    return out;
  }

  const std::string& file_;
  const EnvLookup& env_;
  Diagnostics& diags_;
  std::vector<Open> stack_;
  std::map<YAML::anchor_t, Anchored> anchors_;
  std::size_t values_ = 0;
  SpecNode root_;
  bool has_root_ = false;
};

}  // namespace

SpecNode parse_spec(std::string_view text, const std::string& file, const EnvLookup& env, Diagnostics& diags) {
  std::istringstream in{std::string(text)};
  SpecBuilder builder(file, env, diags);
  try {
    YAML::Parser parser(in);
    parser.HandleNextDocument(builder);
  } catch (const YAML::Exception& e) {
    Location where{file, e.mark.is_null() ? 0 : e.mark.line + 1, e.mark.is_null() ? 0 : e.mark.column + 1};
    diags.error(where, fmt::format("invalid YAML: {}", e.msg));
    return SpecNode{};
  } catch (const TooLarge& e) {
    diags.error(e.where, e.message);
    return SpecNode{};
  }
  if (!builder.has_root()) return SpecNode{};
  return builder.take_root();
}

}  // namespace sluice
