// frontier: the crawl's memory. Takes discovered URLs, keeps those in scope (allow/deny RE2
// patterns, same_host, max_depth) that were never seen before, and sends them on — without the
// limit permits of the page they came from, so that a URL waiting for a fetch holds no slot.
#include <curl/curl.h>
#include <fmt/format.h>
#include <re2/re2.h>

#include <set>
#include <unordered_set>

#include "../builtin.hpp"

namespace sluice::nodes {
namespace {

// 64-bit FNV-1a: the seen set stores 8 bytes per URL, not the URL.
std::uint64_t url_hash(std::string_view s) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::string host_of(const std::string& url) {
  CURLU* u = curl_url();
  std::string out;
  if (curl_url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK) {
    char* host = nullptr;
    if (curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && host) out = host;
    curl_free(host);
  }
  curl_url_cleanup(u);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

class Frontier final : public TransformNode {
 public:
  Frontier(std::vector<std::unique_ptr<RE2>> allow, std::vector<std::unique_ptr<RE2>> deny, bool same_host,
           std::int64_t max_depth, std::int64_t max_pages)
      : allow_(std::move(allow)),
        deny_(std::move(deny)),
        same_host_(same_host),
        max_depth_(max_depth),
        max_pages_(max_pages) {}

  void process(Record& in, Emitter& out) override {
    const Value* url = in.get("url");
    if (!url || !url->as_string()) {
      out.fail(std::move(in), "record has no 'url' field");
      return;
    }
    const std::string& u = *url->as_string();
    const bool seed = in.meta.depth == 0;
    if (seed && same_host_) seed_hosts_.insert(host_of(u));
    if (!seed && max_depth_ >= 0 && in.meta.depth > max_depth_) return;
    if (!seed && same_host_ && !seed_hosts_.count(host_of(u))) return;
    if (!allow_.empty() &&
        std::none_of(allow_.begin(), allow_.end(), [&](auto& re) { return RE2::PartialMatch(u, *re); })) {
      return;
    }
    if (std::any_of(deny_.begin(), deny_.end(), [&](auto& re) { return RE2::PartialMatch(u, *re); })) return;
    if (!seen_.insert(url_hash(u)).second) return;
    if (max_pages_ > 0 && static_cast<std::int64_t>(seen_.size()) > max_pages_) return;
    Record next;  // a fresh record: no permits of the page it was found on
    next.meta = in.meta;
    next.set("url", Value(u));
    next.set("depth", Value(static_cast<std::int64_t>(in.meta.depth)));
    if (const Value* from = in.get("from_url")) next.set("from_url", *from);
    out.emit(std::move(next), 0);
  }

 private:
  std::vector<std::unique_ptr<RE2>> allow_, deny_;
  bool same_host_;
  std::int64_t max_depth_, max_pages_;
  std::unordered_set<std::uint64_t> seen_;
  std::set<std::string> seed_hosts_;
};

std::string check_pattern(const Value& v) {
  RE2 re(v.to_text(), RE2::Quiet);
  return re.ok() ? "" : fmt::format("invalid regular expression '{}': {}", v.to_text(), re.error());
}

}  // namespace

NodeType frontier_type() {
  NodeType t;
  t.name = "frontier";
  t.kind = NodeKind::transform;
  t.summary = "keeps in-scope URLs never seen before (seeds at depth 0, links deeper) and sends them to fetch";
  t.ports = transform_ports();
  t.schema = Schema({
      FieldSpec::list("allow", FieldSpec::string("pattern", "RE2").validated_by(check_pattern),
                      "a URL must match one of these (when given)")
          .with_default(""),
      FieldSpec::list("deny", FieldSpec::string("pattern", "RE2").validated_by(check_pattern),
                      "a URL matching any of these is dropped")
          .with_default(""),
      FieldSpec::boolean("same_host", "follow links only to the hosts of the seeds").with_default("true"),
      FieldSpec::integer("max_depth", "link depth from a seed; -1: unlimited").with_default("-1").at_least(-1),
      FieldSpec::integer("max_pages", "distinct URLs let through at most; 0: unlimited").with_default("0").at_least(0),
  });
  t.factory = [](const NodeContext& ctx) -> std::unique_ptr<Node> {
    const Config& c = ctx.config;
    auto compile = [&](const char* name) {
      std::vector<std::unique_ptr<RE2>> out;
      for (const auto& p : c.list(name)) out.push_back(std::make_unique<RE2>(std::get<Value>(p.v).to_text()));
      return out;
    };
    return std::make_unique<Frontier>(compile("allow"), compile("deny"), c.boolean("same_host"), c.integer("max_depth"),
                                      c.integer("max_pages"));
  };
  t.example = R"(- id: frontier
  type: frontier
  max_depth: 3
  deny: ['\?sort=', '/cart'])";
  return t;
}

}  // namespace sluice::nodes
