// parse.json: extracts items and fields from JSON responses with simdjson (chosen over
// nlohmann-json for speed: bench/json_libs.cpp measures 8.7 us vs 211 us per 22 KB API page).
#include <fmt/format.h>
#include <simdjson.h>

#include <atomic>
#include <charconv>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "../builtin.hpp"
#include "../text.hpp"
#include "field_type.hpp"
#include "gzip.hpp"
#include "links.hpp"
#include "selector_stats.hpp"
#include "sluice/json.hpp"
#include "sluice/template.hpp"

namespace sluice::nodes {
namespace {

// "a.b.0" or "/a/b/0" -> a JSON Pointer; "" is the whole document.
std::string to_pointer(std::string_view path) {
  if (path.empty() || path.front() == '/') return std::string(path);
  std::string out;
  std::size_t start = 0;
  while (start <= path.size()) {
    auto dot = path.find('.', start);
    std::string_view part = path.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    out += '/';
    for (char c : part) {
      if (c == '~')
        out += "~0";
      else if (c == '/')
        out += "~1";
      else
        out += c;
    }
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return out;
}

Value to_value(simdjson::dom::element e) {
  switch (e.type()) {
    case simdjson::dom::element_type::INT64:
      return Value(int64_t(e));
    case simdjson::dom::element_type::UINT64:
      // Above the largest int64 (simdjson gives INT64 below it): an id such as 12345678901234567890
      // keeps its digits as text, where a double would change them.
      return Value(std::to_string(uint64_t(e)));
    case simdjson::dom::element_type::DOUBLE:
      return Value(double(e));
    case simdjson::dom::element_type::STRING:
      return Value(std::string(std::string_view(e)));
    case simdjson::dom::element_type::BOOL:
      return Value(bool(e));
    case simdjson::dom::element_type::NULL_VALUE:
      return Value();
    case simdjson::dom::element_type::ARRAY: {
      List list;
      for (simdjson::dom::element item : e.get_array()) list.push_back(to_value(item));
      return Value(std::move(list));
    }
    case simdjson::dom::element_type::OBJECT: {
      Object object;
      for (auto [key, item] : e.get_object()) object.emplace_back(std::string(key), to_value(item));
      return Value(std::move(object));
    }
  }
  return Value();
}

// A JSON Pointer split at its `*` steps ("/images/*/url": "/images", "/url"): one piece for a
// path without them.
using Pieces = std::vector<std::string>;

Pieces pieces_of(const std::string& pointer) {
  Pieces pieces(1);
  std::size_t start = 0;
  while (start < pointer.size()) {
    std::size_t end = pointer.find('/', start + 1);
    if (end == std::string::npos) end = pointer.size();
    if (pointer.compare(start, end - start, "/*") == 0) {
      pieces.emplace_back();
    } else {
      pieces.back().append(pointer, start, end - start);
    }
    start = end;
  }
  return pieces;
}

// Appends the values (not null) that `pieces` reach from `e`: a `*` step goes to every element of
// an array and every member of an object. Each step visits a value once, so the work is bounded
// by the size of the document times the number of steps.
void collect(simdjson::dom::element e, const Pieces& pieces, std::size_t i, std::vector<simdjson::dom::element>& out) {
  simdjson::dom::element at;
  if (e.at_pointer(pieces[i]).get(at) != simdjson::SUCCESS || at.is_null()) return;
  if (i + 1 == pieces.size()) {
    out.push_back(at);
  } else if (at.is_array()) {
    for (simdjson::dom::element element : at.get_array()) collect(element, pieces, i + 1, out);
  } else if (at.is_object()) {
    for (auto [name, member] : at.get_object()) collect(member, pieces, i + 1, out);
  }
}

// The options that name the next page, one at most: a path in the body, the Link header, a query
// parameter stepped on.
constexpr const char* kNextOptions[] = {"next", "link_header", "page_param", "offset_param"};

struct JsonField {
  std::string name;
  std::vector<Pieces> paths;  // `path`, then its `fallback`s: the first with a value (not null) wins
  parse::FieldSources sources;
  bool required = false;
  std::shared_ptr<parse::TypedField> typed;  // type: number, integer or date
  bool list = false;  // a path has a `*` step: the field is the list of what its first path that finds any reaches
};

class JsonParser final : public TransformNode {
 public:
  JsonParser(const NodeContext& ctx, std::optional<Pieces> items, std::vector<JsonField> fields,
             std::optional<std::string> link)
      : body_field_(ctx.config.string("body_field")),
        url_field_(ctx.config.string("url_field")),
        items_(std::move(items)),
        item_key_(ctx.config.has("item_key") ? ctx.config.string("item_key") : std::string()),
        next_url_(ctx.config.has("next_url") ? FieldTemplate::compile(ctx.config.string("next_url")) : std::nullopt),
        next_field_(ctx.config.has("next_field") ? ctx.config.string("next_field") : std::string()),
        next_unless_(ctx.config.has("next_if") && ctx.config.string("next_if").starts_with('!')),
        next_if_(ctx.config.has("next_if")
                     ? std::optional(to_pointer(ctx.config.string("next_if").substr(next_unless_ ? 1 : 0)))
                     : std::nullopt),
        fail_if_(ctx.config.has("fail_if") ? ctx.config.string("fail_if") : std::string()),
        fail_pointer_(fail_if_.empty() ? std::string() : to_pointer(fail_if_)),
        link_header_(ctx.config.has("link_header") ? ctx.config.string("link_header") : std::string()),
        step_param_(ctx.config.has("page_param")     ? ctx.config.string("page_param")
                    : ctx.config.has("offset_param") ? ctx.config.string("offset_param")
                                                     : std::string()),
        by_items_(ctx.config.has("offset_param")),
        fields_(std::move(fields)),
        link_(std::move(link)),
        keep_(parse::keep_of(ctx.config)),
        stats_(ctx, link_option(ctx.config), paths(fields_)),
        notice_(ctx.notice) {}

  void finish() override {
    stats_.finish();
    if (!link_header_.empty() && pages_.load() > 0 && !header_seen_.load() && notice_) {
      const std::uint64_t pages = pages_.load();
      notice_(
          fmt::format("link_header: {} field '{}', so no next page was followed: add link to fetch's "
                      "keep_headers (keep_headers: [link])",
                      pages == 1 ? "the page had no" : fmt::format("none of the {} pages had a", pages), link_header_));
    }
    std::unique_lock lock(before_mutex_);
    if (repeated_ > 0 && notice_) {
      notice_(
          fmt::format("{}: {} gave the same items as the page before {}, so no page after {} was asked for "
                      "(the first: '{}'): does the API take '{}'?",
                      by_items_ ? "offset_param" : "page_param",
                      repeated_ == 1 ? "a page" : fmt::format("{} pages", repeated_), repeated_ == 1 ? "it" : "them",
                      repeated_ == 1 ? "it" : "them", hide_credentials(first_repeated_), step_param_));
    }
    lock.unlock();
    for (const JsonField& f : fields_) {
      if (f.typed) f.typed->say(f.name, notice_);
    }
  }

  void process(Record& page, Emitter& out) override {
    std::string_view text = parse::body_text(page, body_field_);
    std::string page_url = parse::page_url_of(page, url_field_);
    // A gzip file (an export.json.gz served as application/gzip): its content is the JSON.
    std::string unzip_error;
    const std::optional<std::string> unzipped = parse::unzip_body(text, page_url, unzip_error);
    if (!unzip_error.empty()) {
      out.fail(std::move(page), std::move(unzip_error));
      return;
    }
    if (unzipped) text = *unzipped;
    if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);  // a byte order mark (some servers send one)
    thread_local simdjson::dom::parser parser;
    simdjson::dom::element doc;
    if (const auto error = parser.parse(text.data(), text.size()).get(doc); !error) {
      std::string reported = reported_error(doc);
      if (reported.empty()) {
        std::uint64_t digest = 0;
        const std::size_t items = extract(page, page_url, doc, out, digest);
        emit_page_link(page, page_url, items, digest, next_allowed(doc), out);
      }
      stats_.page_done();
      if (!reported.empty()) out.fail(std::move(page), fmt::format("'{}' answered with {}", page_url, reported));
      return;
    } else if (!json_lines(parser, text)) {
      const std::string served = served_as(page);
      out.fail(std::move(page),
               fmt::format("invalid JSON from '{}': {}{}", page_url, simdjson::error_message(error), served));
      return;
    }
    // JSON Lines (NDJSON: an export, a log, an index server's answer): each line is read as a
    // page's document would be. The items of good lines go on; bad lines fail the page.
    std::size_t bad = 0, items = 0;
    std::uint64_t digest = 0;
    bool allowed = true;  // next_if allowed a next page on every line
    std::string first_bad;
    for_each_line(text, [&](std::size_t number, std::string_view line) {
      std::string reported;
      if (auto line_error = parser.parse(line.data(), line.size()).get(doc)) {
        if (bad++ == 0)
          first_bad = fmt::format("invalid JSON Lines from '{}' at line {}: {}", page_url, number,
                                  simdjson::error_message(line_error));
      } else if (!(reported = reported_error(doc)).empty()) {
        if (bad++ == 0) first_bad = fmt::format("'{}' answered with {} at line {}", page_url, reported, number);
      } else {
        items += extract(page, page_url, doc, out, digest);
        allowed = allowed && next_allowed(doc);
      }
      return true;
    });
    emit_page_link(page, page_url, items, digest, allowed, out);
    stats_.page_done();
    if (bad != 0) {
      const std::string more = bad == 1 ? "" : fmt::format(" (and {} more line{})", bad - 1, bad == 2 ? "" : "s");
      out.fail(std::move(page), first_bad + more + served_as(page));
    }
  }

 private:
  // The option that names the next page, for the "selectors" table.
  static std::string link_option(const Config& config) {
    for (const char* option : kNextOptions) {
      if (config.has(option)) return option;
    }
    return "next";
  }

  // An HTML error page or a login form where JSON was expected: the content type says so.
  static std::string served_as(const Record& page) {
    const Value* type = page.get("content_type");
    if (type && type->as_string() && type->as_string()->find("json") == std::string::npos)
      return fmt::format(" (the response's content type is '{}')", *type->as_string());
    return "";
  }

  // The next-page link that the page as a whole gives, after its documents' items (`items` of them;
  // `more`: next_if allowed one): with `link_header` the target of the rel="next" link in its Link
  // header; with `page_param` or `offset_param` its URL with that parameter one more page on, while
  // it gave items, and items other than the page before it (`digest`: its items' hash).
  void emit_page_link(const Record& page, const std::string& page_url, std::size_t items, std::uint64_t digest,
                      bool more, Emitter& out) {
    std::string url;
    if (!link_header_.empty()) {
      pages_.fetch_add(1, std::memory_order_relaxed);
      const Value* header = page.get(link_header_);
      if (header && !header->is_null()) {
        if (!header_seen_.load(std::memory_order_relaxed)) header_seen_.store(true, std::memory_order_relaxed);
        if (const std::string* text = header->as_string()) {
          const std::string target = parse::link_header_target(*text, "next");
          if (!target.empty()) url = parse::resolve_link(page_url, target);
        }
      }
    } else if (!step_param_.empty()) {
      // page=3 -> page=4 (none: the first page, 1); offset=40 -> offset=40 + the page's items (none: 0).
      const std::optional<std::string> at = parse::query_param(page_url, step_param_);
      std::int64_t now = by_items_ ? 0 : 1;
      const bool number = !at || parse_int(*at, now);
      if (more && items > 0 && number && !repeats_page_before(page_url, digest)) {
        const std::int64_t step = by_items_ ? static_cast<std::int64_t>(items) : 1;
        url = parse::resolve_link(page_url, parse::with_query_param(page_url, step_param_, std::to_string(now + step)));
        remember_page(url, digest);
      }
    } else {
      return;
    }
    stats_.tally().add(stats_.link_row(), url.empty() ? 0 : 1);
    if (!url.empty()) out.emit(parse::link_record(page, page_url, std::move(url), keep_), 1);
  }

  // Whether the page at `page_url` gave the same items (`digest`) as the page whose next page it
  // is: an API that does not take the parameter (a misspelt one) or answers every page past its
  // last with the last would otherwise be asked for pages for ever. Counted for finish()'s notice.
  bool repeats_page_before(const std::string& page_url, std::uint64_t digest) {
    std::lock_guard lock(before_mutex_);
    const auto it = before_.find(page_url);
    if (it == before_.end()) return false;
    const bool same = it->second == digest;
    before_.erase(it);
    if (same && repeated_++ == 0) first_repeated_ = page_url;
    return same;
  }

  // The items' digest of the page whose next page is `next_url`, for repeats_page_before(). Pages
  // of one API come one after the other, so this holds one entry per API being paged; the next
  // pages of a resumed run or of a frontier that had too many are not compared.
  void remember_page(const std::string& next_url, std::uint64_t digest) {
    std::lock_guard lock(before_mutex_);
    if (before_.size() >= 100'000) before_.clear();
    before_[next_url] = digest;
  }

  // Whether `text` is a whole decimal integer (a page number in a URL); it in `value` when it is.
  static bool parse_int(const std::string& text, std::int64_t& value) {
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    return error == std::errc() && end == text.data() + text.size();
  }

  // With `next_if`: whether the document allows a next page (its value there is true; false for a
  // path written with a leading '!').
  bool next_allowed(simdjson::dom::element doc) const {
    simdjson::dom::element more;
    return !next_if_ ||
           (doc.at_pointer(*next_if_).get(more) == simdjson::SUCCESS && more.is_bool() && bool(more) != next_unless_);
  }

  // With `fail_if`: what the document reports at that path when it reports a failure there (a
  // value that is not null, false, "", [] or {}), as "an error at 'errors': [{...}]"; else "".
  std::string reported_error(simdjson::dom::element doc) const {
    simdjson::dom::element v;
    if (fail_if_.empty() || doc.at_pointer(fail_pointer_).get(v) != simdjson::SUCCESS) return "";
    if (v.is_null() || (v.is_bool() && !bool(v)) || (v.is_string() && std::string_view(v).empty()) ||
        (v.is_array() && v.get_array().size() == 0) || (v.is_object() && v.get_object().size() == 0))
      return "";
    std::string text;
    if (v.is_string()) {
      text = std::string(std::string_view(v));
    } else {
      append_json(text, to_value(v));
    }
    return fmt::format("an error at '{}': {}", fail_if_, sample_of(text, 300));
  }

  // Whether `text`, which is not one JSON document, is JSON Lines: its first line that is not
  // blank is a document alone, and another line that is not blank follows (a document written over
  // several lines never starts with a whole one). Parses with `parser`.
  static bool json_lines(simdjson::dom::parser& parser, std::string_view text) {
    std::string_view first;
    bool more = false;
    for_each_line(text, [&](std::size_t, std::string_view line) {
      if (first.empty()) {
        first = line;
      } else {
        more = true;
      }
      return !more;
    });
    simdjson::dom::element doc;
    return more && parser.parse(first.data(), first.size()).get(doc) == simdjson::SUCCESS;
  }

  // Calls `visit(number, line)` with each line of `text` that is not blank (its number from 1,
  // counting all lines; without its line break), while `visit` returns true.
  template <typename Visit>
  static void for_each_line(std::string_view text, Visit&& visit) {
    for (std::size_t number = 1; !text.empty(); ++number) {
      const std::size_t end = text.find('\n');
      const std::string_view line = text.substr(0, end);
      text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
      if (line.find_first_not_of(" \t\r") != std::string_view::npos && !visit(number, line)) return;
    }
  }

  // The next-page link and the items of one JSON document of `page`.
  // Returns the number of items (1 without `items`).
  // With `page_param` or `offset_param` adds the items' JSON to `digest`.
  std::size_t extract(const Record& page, const std::string& page_url, simdjson::dom::element doc, Emitter& out,
                      std::uint64_t& digest) {
    parse::SelectorStats::Tally& tally = stats_.tally();
    if (link_) tally.add(stats_.link_row(), emit_link(page, page_url, doc, out) ? 1 : 0);
    // The items, each with its key for `item_key`: a member's name, or a position in an array.
    std::vector<std::pair<Value, simdjson::dom::element>> items;
    if (items_) {
      std::vector<simdjson::dom::element> reached;  // one value, or with `*` steps each that they reach
      collect(doc, *items_, 0, reached);
      for (simdjson::dom::element found : reached) {
        if (found.is_array()) {
          std::int64_t position = 0;
          for (simdjson::dom::element e : found.get_array()) items.emplace_back(Value(position++), e);
        } else if (found.is_object() && !item_key_.empty()) {
          // An API that keys its items by id ({"data": {"A1": {...}, "B2": {...}}}).
          for (auto [name, e] : found.get_object()) items.emplace_back(Value(std::string(name)), e);
        } else {
          items.emplace_back(Value(), found);
        }
      }
      tally.add(parse::SelectorStats::kItemsRow, items.size());
    } else {
      items.emplace_back(Value(), doc);
    }
    for (auto& [key, item] : items) {
      if (!step_param_.empty()) digest = (digest ^ fnv1a64(simdjson::to_string(item))) * 0x100000001b3ULL;
      Record r = parse::item_record(page, page_url, keep_);
      if (!item_key_.empty() && !key.is_null()) r.set(item_key_, std::move(key));
      std::string problem;
      for (std::size_t fi = 0; fi < fields_.size(); ++fi) {
        const JsonField& f = fields_[fi];
        std::string no_value;  // a value that is none, for a required field's error
        Value value =
            f.list ? list_value(f, fi, item, page, tally, no_value) : single_value(f, fi, item, page, tally, no_value);
        if (f.required && value.is_null() && problem.empty()) {
          problem = parse::required_field_error(f.name, "path " + f.sources.quoted, f.typed.get(), no_value);
        }
        r.set(f.name, std::move(value));
      }
      if (!problem.empty()) {
        out.fail(std::move(r), std::move(problem));
      } else {
        out.emit(std::move(r), 0);
      }
    }
    return items.size();
  }

  // `value` typed as `f` says; none (and the first such value in `no_value`) when it has none.
  static Value typed(const JsonField& f, Value value, const Record& page, std::string& no_value) {
    if (!f.typed) return value;
    if (auto n = f.typed->convert(value, &page)) return std::move(*n);
    if (no_value.empty()) no_value = nodes::sample_of(value.to_text());
    return Value();
  }

  // Field `fi` of `item`: the value at the first of its paths that has one (not null).
  Value single_value(const JsonField& f, std::size_t fi, simdjson::dom::element item, const Record& page,
                     parse::SelectorStats::Tally& tally, std::string& no_value) const {
    for (const Pieces& path : f.paths) {
      simdjson::dom::element v;
      if (item.at_pointer(path.front()).get(v) == simdjson::SUCCESS && !v.is_null()) {
        tally.add(stats_.field_row(fi), 1);
        return typed(f, to_value(v), page, no_value);
      }
    }
    tally.add(stats_.field_row(fi), 0);
    return Value();
  }

  // Field `fi` of `item` with a `*` step: the list of what the first of its paths that reaches
  // any value reaches; none when none does.
  Value list_value(const JsonField& f, std::size_t fi, simdjson::dom::element item, const Record& page,
                   parse::SelectorStats::Tally& tally, std::string& no_value) const {
    std::vector<simdjson::dom::element> found;
    for (const Pieces& path : f.paths) {
      collect(item, path, 0, found);
      if (!found.empty()) break;
    }
    tally.add(stats_.field_row(fi), found.size());
    List values;
    for (simdjson::dom::element v : found) {
      Value value = typed(f, to_value(v), page, no_value);
      if (!value.is_null()) values.push_back(std::move(value));
    }
    return values.empty() ? Value() : Value(std::move(values));
  }

  // The fields' names and paths, for the "selectors" table.
  static std::vector<std::pair<std::string, std::string>> paths(const std::vector<JsonField>& fields) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& f : fields) out.emplace_back(f.name, f.sources.listed);
    return out;
  }

  // Emits the page's next-page link; whether it had one.
  bool emit_link(const Record& page, const std::string& page_url, simdjson::dom::element doc, Emitter& out) {
    simdjson::dom::element v;
    if (!next_allowed(doc)) return false;  // `hasNextPage: false` ends the pages whatever the cursor says
    if (doc.at_pointer(*link_).get(v) != simdjson::SUCCESS) return false;
    std::string url;
    if (next_url_ || !next_field_.empty()) {
      // A cursor or page number: none, null, "" or false is the last page.
      if (v.is_null() || v.is_array() || v.is_object() || (v.is_bool() && !bool(v)) ||
          (v.is_string() && std::string_view(v).empty()))
        return false;
    }
    if (next_url_) {
      Record values;  // `next`, and what else the template names from the page (not its body)
      for (const std::string& name : next_url_->fields()) {
        if (name == "next") {
          values.set(name, to_value(v));
        } else if (const Value* value = page.get(name)) {
          values.set(name, *value);
        }
      }
      url = parse::resolve_link(page_url, next_url_->render(values));
    } else if (!next_field_.empty()) {
      url = parse::resolve_link(page_url, page_url);  // the same endpoint, the cursor in a field (a POST body)
    } else {
      if (!v.is_string()) return false;
      url = parse::resolve_link(page_url, std::string(std::string_view(v)));
    }
    if (url.empty()) return false;
    Record link = parse::link_record(page, page_url, std::move(url), keep_);
    if (!next_field_.empty()) link.set(next_field_, to_value(v));
    out.emit(std::move(link), 1);
    return true;
  }

  std::string body_field_, url_field_;
  std::optional<Pieces> items_;
  std::string item_key_;  // "": items carry no key
  std::optional<FieldTemplate> next_url_;  // the next page's URL from the cursor at `next`
  std::string next_field_;                 // "": links carry no cursor; else the field that takes it
  bool next_unless_ = false;               // next_if: '!isLast': a next page only when it is false
  std::optional<std::string> next_if_;     // a pointer to a boolean: a next page only when it is true
  std::string fail_if_, fail_pointer_;     // "": none; else where a document reports a failure (as written, a pointer)
  std::string link_header_;                // "": none; else the field holding the response's Link header
  std::string step_param_;                 // "": none; else page_param's or offset_param's name
  bool by_items_ = false;                  // offset_param: the step is the page's items, not 1
  std::mutex before_mutex_;                // guards before_, repeated_ and first_repeated_
  std::unordered_map<std::string, std::uint64_t> before_;  // a next page's URL -> its page's items' digest
  std::uint64_t repeated_ = 0;                             // pages with the items of the page before
  std::string first_repeated_;
  std::atomic<std::uint64_t> pages_{0};    // pages whose Link header was looked for
  std::atomic<bool> header_seen_{false};   // a page had the field (not null: fetch keeps the header)
  std::vector<JsonField> fields_;
  std::optional<std::string> link_;
  std::vector<std::string> keep_;
  parse::SelectorStats stats_;
  std::function<void(std::string)> notice_;
};

Schema json_field_schema() {
  return Schema(
      {
          FieldSpec::string(
              "path",
              "JSON Pointer (/a/b/0) or dotted path (a.b.0), relative to the item; the value keeps its "
              "JSON type: an object or array is taken whole, an integer above 9223372036854775807 as its digits "
              "(text); a * step takes every element or member (images.*.url: a list of the URLs)")
              .make_required(),
          FieldSpec::list("fallback", FieldSpec::string("path", "JSON Pointer or dotted path"),
                          "paths tried in turn when `path` gives nothing or null (an API that moved a field)")
              .with_default("[]"),
          FieldSpec::boolean("required", "a record without this field is an error (on_error)").with_default("false"),
          parse::field_type_spec(),
          parse::field_decimal_spec(),
          parse::field_date_order_spec(),
          parse::field_time_zone_spec(),
      },
      parse::check_field_type);
}

// `keep` against what the node extracts, `item_key` (only with `items`, a name of its own),
// `next_url` and `next_field` (only with `next`), one way to the next page (next, link_header,
// page_param or offset_param; the last two only with `items`), `next_if` (not with link_header).
void check_json_config(const Config& config, const Location& owner, Diagnostics& diags) {
  if (config.has("next_field")) {
    const std::string name = config.string("next_field");
    if (name.empty() || name == "url" || name == "depth" || name == "from_url") {
      diags.error(config.where("next_field"),
                  fmt::format("next_field '{}' must name a field of its own (not url, depth or from_url)", name));
    }
    if (!config.has("next")) {
      diags.error(config.where("next_field"), "next_field needs next: the path of the cursor it carries");
    }
  }
  // One way to the next page: a path in the body, the Link header, or a query parameter stepped on.
  const char* first = nullptr;
  for (const char* option : kNextOptions) {
    if (!config.has(option)) continue;
    if (first) {
      diags.error(config.where(option), fmt::format("{} and {} both name the next page: use one", first, option));
    } else {
      first = option;
    }
  }
  if (config.has("link_header") && config.string("link_header").empty())
    diags.error(config.where("link_header"), "link_header must name a field");
  for (const char* option : {"page_param", "offset_param"}) {
    if (!config.has(option)) continue;
    const std::string name = config.string(option);
    if (name.empty() || name.find_first_of("&=#?") != std::string::npos)
      diags.error(config.where(option), fmt::format("{}: '{}' is not a query parameter's name", option, name));
    if (!config.has("items"))
      diags.error(config.where(option), fmt::format("{} needs items: the pages go on while they give items", option));
  }
  if (config.has("next_if") && !config.has("next") && !config.has("page_param") && !config.has("offset_param")) {
    diags.error(config.where("next_if"),
                "next_if needs next, page_param or offset_param: what the next page is when it allows one");
  }
  if (config.has("next_url") && !config.has("next")) {
    diags.error(config.where("next_url"), "next_url needs next: the path of the cursor or page number it takes");
  }
  if (!config.has("item_key")) {
    parse::check_keep_against_fields(config, owner, diags);
    return;
  }
  const std::string key = config.string("item_key");
  const Location where = config.where("item_key");
  std::vector<std::string> produced{key};
  for (const auto& [name, value] : config.map("fields")) {
    if (name == key) {
      diags.error(where, fmt::format("item_key '{}' is also a field of this node: rename one", key));
    }
    produced.push_back(name);
  }
  if (key.empty()) diags.error(where, "item_key must name a field");
  if (!config.has("items")) {
    diags.error(where, "item_key needs items: the path of the object (or array) whose members are the items");
  }
  parse::check_keep(config, produced, diags);
}

}  // namespace

NodeType parse_json_type() {
  NodeType t;
  t.name = "parse.json";
  t.kind = NodeKind::transform;
  t.summary = "extracts items and fields from JSON (or JSON Lines) with JSON Pointers or dotted paths (simdjson)";
  t.ports = transform_ports();
  t.ports.insert(
      t.ports.begin() + 2,
      PortSpec{"links", PortDirection::output,
               "the URL at 'next' (pagination), resolved: url, depth, from_url (and the cursor in next_field)"});
  FieldSpec field =
      FieldSpec::object_of("field", json_field_schema(), "a path, or {path, fallback, required, type, decimal}");
  field.shorthand = "path";
  t.schema = Schema(
      {
          FieldSpec::string("items",
                            "path of an array whose elements become one record each (default: the document); with "
                            "item_key, also of an object whose members do; with * steps (categories.*.products), "
                            "of every one it reaches"),
          FieldSpec::string("item_key",
                            "with items: the field that takes each item's name in an object of items keyed by id "
                            "({\"A1\": {...}, \"B2\": {...}}: one item per member, in order), or its position "
                            "from 0 in an array"),
          FieldSpec::map("fields", field, "field name -> path").with_default(""),
          parse::keep_spec(),
          FieldSpec::string("next", "path of a next-page URL to emit on the links port (with next_url: of a cursor)"),
          FieldSpec::string("next_url",
                            "the next page's URL from a cursor or page number at `next`, a template: {next} is that "
                            "value ({next:url} percent-encoded), other {field}s the page's ('{url}'); none, null, "
                            "\"\" or false at `next` is the last page")
              .validated_by(check_template),
          FieldSpec::string("next_field",
                            "the field in which the next-page link carries the cursor at `next` (none, null, \"\" or "
                            "false: the last page), for a POST body (fetch's body: '{{\"after\": {after:json}}}'); "
                            "without next_url the link's URL is the page's; a frontier keeps such pages apart with "
                            "its key: '{url} {after}'"),
          FieldSpec::string("link_header",
                            "the field holding the response's Link header (fetch's keep_headers: [link] gives "
                            "header_link): its rel=\"next\" target is the next page, emitted on links (GitHub's "
                            "and other REST APIs' pagination); instead of next"),
          FieldSpec::string("page_param",
                            "the query parameter of a page number (page): the next page is the page's URL with it "
                            "one more (2 when the URL has none), while pages give items other than the page "
                            "before's; instead of next"),
          FieldSpec::string("offset_param",
                            "the query parameter of an offset (offset, start): the next page is the page's URL "
                            "with it increased by the page's items (from 0), while pages give items other than "
                            "the page before's; instead of next"),
          FieldSpec::string("fail_if",
                            "path where an API reports a failure in a 200 answer (GraphQL's errors, an error "
                            "message): a page with a value there (not null, false, \"\", [] or {}) fails with it "
                            "(on_error) instead of giving items"),
          FieldSpec::string("next_if",
                            "path of a boolean (pageInfo.hasNextPage, has_more): a next page only when it is true; "
                            "with a leading ! (!isLast) only when it is false"),
          FieldSpec::string("body_field", "the field holding the JSON").with_default("body"),
          FieldSpec::string("url_field", "the page URL links resolve against (falls back to url, then page_url)")
              .with_default("final_url"),
      },
      check_json_config);
  t.factory = [](const NodeContext& ctx) -> std::unique_ptr<Node> {
    const Config& c = ctx.config;
    std::vector<JsonField> fields;
    for (const auto& [name, value] : c.map("fields")) {
      const Config& f = *std::get<ConfigValue::Object>(value.v);
      JsonField rule{name, {}, {}, f.boolean("required"), parse::typed_field_of(f)};
      std::vector<std::string> written{f.string("path")};
      for (const auto& fallback : f.list("fallback")) written.push_back(std::get<Value>(fallback.v).to_text());
      for (const auto& path : written) {
        rule.paths.push_back(pieces_of(to_pointer(path)));
        rule.list = rule.list || rule.paths.back().size() > 1;
      }
      rule.sources = parse::sources_of(written);
      fields.push_back(std::move(rule));
    }
    std::optional<Pieces> items;
    std::optional<std::string> next;
    if (c.has("items")) items = pieces_of(to_pointer(c.string("items")));
    if (c.has("next")) next = to_pointer(c.string("next"));
    return std::make_unique<JsonParser>(ctx, std::move(items), std::move(fields), std::move(next));
  };
  t.parallel = true;
  t.example = R"(- id: api
  type: parse.json
  items: data.items
  fields: {id: id, name: name, price: {path: price.amount, required: true}}
  next: links.next)";
  return t;
}

}  // namespace sluice::nodes

namespace sluice::parse {

std::string set_json_fields(Record& r, std::string_view json) {
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (auto error = parser.parse(json.data(), json.size()).get(doc)) {
    return fmt::format("invalid JSON: {}", simdjson::error_message(error));
  }
  simdjson::dom::object object;
  if (doc.get(object) != simdjson::SUCCESS) {
    switch (doc.type()) {
      case simdjson::dom::element_type::ARRAY:
        return "expected a JSON object, got an array";
      case simdjson::dom::element_type::STRING:
        return "expected a JSON object, got a string";
      case simdjson::dom::element_type::NULL_VALUE:
        return "expected a JSON object, got null";
      case simdjson::dom::element_type::BOOL:
        return "expected a JSON object, got true or false";
      default:
        return "expected a JSON object, got a number";
    }
  }
  if (object.size() <= 32) {
    for (auto [key, value] : object) r.set(key, nodes::to_value(value));  // a short scan for a name given twice
    return "";
  }
  // Many members: a name given twice is found in a hash map, so that the work stays linear
  // whatever the object repeats; then the record's own fields (a few) are replaced or added to.
  std::vector<std::pair<std::string_view, Value>> members;
  members.reserve(object.size());
  std::unordered_map<std::string_view, std::size_t> at;
  for (auto [key, value] : object) {
    auto [it, first] = at.try_emplace(key, members.size());
    if (first) {
      members.emplace_back(key, nodes::to_value(value));
    } else {
      members[it->second].second = nodes::to_value(value);
    }
  }
  const std::size_t had = r.fields().size();
  r.reserve(had + members.size());
  for (auto& [key, value] : members) {
    bool replaced = false;
    for (std::size_t i = 0; i < had && !replaced; ++i) replaced = r.fields()[i].first == key;
    if (replaced) {
      r.set(key, std::move(value));
    } else {
      r.append(key, std::move(value));
    }
  }
  return "";
}

}  // namespace sluice::parse
