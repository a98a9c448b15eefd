#include "sluice/spec.hpp"

#include <fmt/format.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>

#include <algorithm>
#include <cctype>
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

// A pipeline past the builder's bounds (aliases that expand exponentially, absurd nesting), or a
// quoted string never closed: one diagnostic, and the parse stops there (instead of exhausting
// memory or the stack, or of reading the rest of the file as the string's text).
struct StopParse {
  Location where;
  std::string message;
};

// Builds SpecNodes from yaml-cpp parser events; the event API shows every key, so duplicate keys
// (which yaml-cpp's node API drops silently) are seen here.
class SpecBuilder : public YAML::EventHandler {
 public:
  SpecBuilder(std::string_view text, const std::string& file, const EnvLookup& env, Diagnostics& diags)
      : text_(text), file_(file), env_(env), diags_(diags) {
    line_starts_.push_back(text_.starts_with("\xEF\xBB\xBF") ? 3 : 0);  // yaml-cpp's columns skip a BOM
    for (std::size_t i = text_.find('\n'); i != std::string_view::npos; i = text_.find('\n', i + 1)) {
      line_starts_.push_back(i + 1);
    }
  }

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
    aliased_ += it->second.values;
    if (aliased_ > kMaxAliasedValues) {
      throw StopParse{location(mark), fmt::format("aliases copy more than {} values in all (an alias repeats its "
                                                  "anchor's whole tree)",
                                                  kMaxAliasedValues)};
    }
    SpecNode n = it->second.node;
    add(std::move(n), 0, it->second.values);
  }

  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    SpecNode n;
    n.kind = SpecNode::Kind::scalar;
    n.where = location(mark);
    n.quoted = tag != "?";
    if (n.quoted) check_quotes(mark);
    n.scalar = substitute(value, n.where);
    count(1, mark);
    add(std::move(n), anchor, 1);
  }

  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value style) override {
    open(SpecNode::Kind::sequence, mark, anchor, style == YAML::EmitterStyle::Flow);
  }

  void OnSequenceEnd() override { close(); }

  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value style) override {
    open(SpecNode::Kind::map, mark, anchor, style == YAML::EmitterStyle::Flow);
  }

  void OnMapEnd() override { close(); }

  // yaml-cpp's message for a syntax error at `where`, with what most likely caused it: a bracket
  // never closed, a quoted string that ran on over lines, a tab in the indentation, a missing space
  // after a key's ':'. yaml-cpp reports where it gave up, often lines after the mistake.
  std::string explain(const std::string& message, const Location& where) const {
    std::string out = "invalid YAML: " + message;
    const bool flow_end = message == YAML::ErrorMsg::END_OF_SEQ_FLOW || message == YAML::ErrorMsg::END_OF_MAP_FLOW;
    for (auto it = stack_.rbegin(); flow_end && it != stack_.rend(); ++it) {
      if (!it->flow) continue;
      out += fmt::format("; the '{}' at line {}, column {} is never closed", it->node.is_map() ? '{' : '[',
                         it->node.where.line, it->node.where.column);
      break;
    }
    // A quoted string that ends just before the error, lines after its start: most likely closed
    // by the opening quote of the next one.
    const int ends = long_quote_ ? static_cast<int>(long_quote_->second) : 0;
    if (long_quote_ && ends <= where.line && ends + 3 >= where.line) {
      out += fmt::format("; the string quoted at line {}, column {} runs on to line {}: is its closing quote missing?",
                         long_quote_->first.line, long_quote_->first.column, long_quote_->second);
    }
    // The line yaml-cpp stopped at and the one before it (a map's mistake shows on the next line).
    const auto at = static_cast<std::size_t>(std::max(where.line, 0));
    for (std::size_t line : {at, at - 1}) {
      if (line == 0 || line > line_starts_.size()) continue;
      const std::string_view text = line_text(line);
      const std::string_view indent = text.substr(0, text.find_first_not_of(" \t"));
      if (indent.find('\t') != std::string_view::npos && message != YAML::ErrorMsg::TAB_IN_INDENTATION) {
        out += fmt::format("; line {} is indented with a tab: YAML indents with spaces only", line);
        break;
      }
      if (auto joined = joined_key(text)) {
        const std::size_t colon = joined->find(':');
        out += fmt::format("; line {} reads '{}' as one word: write a space after the ':' ('{}: {}')", line, *joined,
                           joined->substr(0, colon), joined->substr(colon + 1));
        break;
      }
    }
    if (message == YAML::ErrorMsg::MAP_VALUE && at >= 2 && at <= line_starts_.size()) {
      // A key indented further than the one above it, which opens no block: "illegal map value".
      const std::string_view here = line_text(at);
      std::size_t above = at - 1;
      while (above > 1 && line_text(above).find_first_not_of(' ') == std::string_view::npos) --above;
      const std::string_view prev = line_text(above);
      const std::size_t indent = here.find_first_not_of(' ');
      const std::size_t prev_indent = prev.find_first_not_of(' ');
      const std::size_t last = prev.find_last_not_of(" \t");
      if (indent != std::string_view::npos && prev_indent != std::string_view::npos && indent > prev_indent &&
          prev[last] != ':' && prev.compare(prev_indent, 2, "- ") != 0 && prev.find('#') == std::string_view::npos) {
        out += fmt::format("; line {} is indented further ({} spaces) than line {} ({}): the keys of one map line up",
                           at, indent, above, prev_indent);
      }
    }
    return out;
  }

 private:
  // Far beyond any pipeline, far below what exhausts memory or yaml-cpp's recursion.
  static constexpr std::size_t kMaxValues = 1'000'000;
  // What aliases may copy, a tenth of that: real pipelines alias small maps of defaults, and each
  // value an alias copies costs a node copied twice (a "billion laughs" file that stopped at
  // kMaxValues took 0.85 s to refuse, and over 10 s under ASan).
  static constexpr std::size_t kMaxAliasedValues = 100'000;
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
    bool flow;  // [a, b] or {k: v}, not a block
  };
  struct Anchored {
    SpecNode node;
    std::size_t values;
  };

  Location location(const YAML::Mark& mark) const { return Location{file_, mark.line + 1, mark.column + 1}; }

  // Line `line` (from 1) of the text, without its line break.
  std::string_view line_text(std::size_t line) const {
    const std::size_t start = line_starts_[line - 1];
    const std::size_t end = line < line_starts_.size() ? line_starts_[line] - 1 : text_.size();
    std::string_view text = text_.substr(start, end - start);
    if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
    return text;
  }

  // A quoted scalar starts at `mark` with its quote. yaml-cpp 0.7 takes one that is never closed
  // to run to the end of the file (the rest of the pipeline silently becomes its text): that is an
  // error here. One closed on a later line is kept, to explain a syntax error found further on.
  void check_quotes(const YAML::Mark& mark) {
    const auto line = static_cast<std::size_t>(mark.line);
    if (mark.line < 0 || line >= line_starts_.size()) return;
    std::size_t open = line_starts_[line] + static_cast<std::size_t>(mark.column);
    // The mark of `&anchor "x"` or `!!str "x"` is at the anchor or tag.
    while (open < text_.size() && (text_[open] == '&' || text_[open] == '!')) {
      open = text_.find_first_of(" \t\n", open);
      if (open == std::string_view::npos) return;
      open = text_.find_first_not_of(" \t", open);
      if (open == std::string_view::npos) return;
    }
    if (open >= text_.size() || (text_[open] != '"' && text_[open] != '\'')) return;
    const std::size_t close = closing_quote(text_, open);
    const Location where{file_, mark.line + 1, static_cast<int>(open - line_starts_[line]) + 1};
    if (close == std::string_view::npos) {
      throw StopParse{where, fmt::format("invalid YAML: the string quoted with {} here is never closed: it runs "
                                         "to the end of the file",
                                         text_[open] == '"' ? "\"" : "'")};
    }
    const std::size_t last = static_cast<std::size_t>(
        std::upper_bound(line_starts_.begin(), line_starts_.end(), close) - line_starts_.begin());
    if (last > line + 1) long_quote_.emplace(where, last);
  }

  // Where the quoted scalar whose opening quote is at `open` ends (its closing quote), or npos.
  static std::size_t closing_quote(std::string_view text, std::size_t open) {
    const char quote = text[open];
    for (std::size_t i = open + 1; i < text.size(); ++i) {
      if (quote == '"' && text[i] == '\\') {
        ++i;  // an escape: \" is no end
      } else if (text[i] == quote) {
        if (quote == '\'' && i + 1 < text.size() && text[i + 1] == '\'') {
          ++i;  // '' is a quote in a single-quoted string
        } else {
          return i;
        }
      }
    }
    return std::string_view::npos;
  }

  // "type:source.list" on a line of its own (after "- " perhaps): a key and its value with no
  // space after the ':', which YAML reads as one plain word. Not "http://...": '/' after ':'.
  static std::optional<std::string_view> joined_key(std::string_view line) {
    std::size_t i = line.find_first_not_of(' ');
    if (i == std::string_view::npos) return std::nullopt;
    if (line.compare(i, 2, "- ") == 0) i = line.find_first_not_of(' ', i + 2);
    if (i == std::string_view::npos) return std::nullopt;
    const std::size_t start = i;
    // No '.': a key has none, and "example.com:8080" is a host and its port.
    auto name_char = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-'; };
    while (i < line.size() && name_char(line[i])) ++i;
    if (i == start || i + 1 >= line.size() || line[i] != ':') return std::nullopt;
    const char next = line[i + 1];
    if (next == ' ' || next == '\t' || next == ':' || next == '/') return std::nullopt;
    std::string_view word = line.substr(start);
    return word.substr(0, word.find_first_of(" \t#"));
  }

  void count(std::size_t values, const YAML::Mark& mark) {
    values_ += values;
    if (values_ > kMaxValues) {
      throw StopParse{location(mark),
                      fmt::format("the pipeline has more than {} values (with aliases expanded)", kMaxValues)};
    }
  }

  void open(SpecNode::Kind kind, const YAML::Mark& mark, YAML::anchor_t anchor, bool flow) {
    if (stack_.size() >= kMaxDepth) {
      throw StopParse{location(mark), fmt::format("lists and maps nested more than {} deep", kMaxDepth)};
    }
    count(1, mark);
    SpecNode n;
    n.kind = kind;
    n.where = location(mark);
    stack_.push_back(Open{std::move(n), anchor, {}, false, 1, std::nullopt, {}, {}, flow});
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

  std::string_view text_;
  std::vector<std::size_t> line_starts_;  // where each line of text_ starts
  // The last quoted scalar so far that spans lines: where it starts, and the line it ends on (from 1).
  std::optional<std::pair<Location, std::size_t>> long_quote_;
  const std::string& file_;
  const EnvLookup& env_;
  Diagnostics& diags_;
  std::vector<Open> stack_;
  std::map<YAML::anchor_t, Anchored> anchors_;
  std::size_t values_ = 0;
  std::size_t aliased_ = 0;  // values copied by aliases
  SpecNode root_;
  bool has_root_ = false;
};

}  // namespace

SpecNode parse_spec(std::string_view text, const std::string& file, const EnvLookup& env, Diagnostics& diags) {
  std::istringstream in{std::string(text)};
  SpecBuilder builder(text, file, env, diags);
  try {
    YAML::Parser parser(in);
    parser.HandleNextDocument(builder);
  } catch (const YAML::Exception& e) {
    Location where{file, e.mark.is_null() ? 0 : e.mark.line + 1, e.mark.is_null() ? 0 : e.mark.column + 1};
    diags.error(where, builder.explain(e.msg, where));
    return SpecNode{};
  } catch (const StopParse& e) {
    diags.error(e.where, e.message);
    return SpecNode{};
  }
  if (!builder.has_root()) return SpecNode{};
  return builder.take_root();
}

}  // namespace sluice
