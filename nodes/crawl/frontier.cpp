// frontier: the crawl's memory, on its own thread. Takes discovered URLs, keeps those in scope
// (allow/deny RE2 patterns, same_host, max_depth, max_pages, max_pages_per_host) that were never
// seen before, parks them by host, and lets them out while fewer than `window` of its URLs (and
// fewer than `per_host_window` of their host's) are in flight downstream, the host with the fewest
// out first. Parked URLs carry no limit permits; beyond `memory` parked URLs they spill to a
// SQLite file, so a crawl's memory does not grow with the size of the site.
#include <fmt/format.h>
#include <re2/re2.h>
#include <signal.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <unordered_set>

#include "../builtin.hpp"
#include "../flat_set.hpp"
#include "../parse/links.hpp"
#include "../store/sqlite_query.hpp"
#include "../text.hpp"
#include "host_queues.hpp"
#include "sluice/json.hpp"
#include "sluice/state.hpp"
#include "sluice/template.hpp"

namespace sluice::nodes {
namespace {

// 64-bit FNV-1a: the seen set stores 8 bytes per URL, not the URL. Its offset basis differs from
// the published one (sluice::fnv1a64) since the first version; state files hold these hashes, so it
// stays.
std::uint64_t url_hash(std::string_view s) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::uint64_t bucket_of_hash(const std::uint64_t& h) {
  return h;
}
std::uint64_t nonzero_hash() {
  return 1;
}
// Hashes of URLs: 8 bytes each in a flat table (11 to 23 bytes per URL in all).
using SeenUrls = FlatHashSet<std::uint64_t, bucket_of_hash, nonzero_hash>;

// Files a crawl for pages does not want: what Scrapy's link extractor leaves out by default.
constexpr const char* kBinaryExtensions =
    "[7z, apk, bz2, deb, dmg, exe, gz, iso, jar, msi, rar, rpm, tar, tgz, xz, zip, "
    "ai, avif, bmp, cdr, eps, gif, heic, ico, jpeg, jpg, png, ps, psd, svg, tif, tiff, webp, "
    "aac, aiff, flac, m4a, mid, mp3, ogg, opus, wav, wma, "
    "3gp, avi, flv, m4v, mkv, mov, mp4, mpeg, mpg, swf, webm, wmv, "
    "doc, docx, odg, odp, ods, odt, pdf, pps, ppt, pptx, xls, xlsx, "
    "css, js, eot, otf, ttf, woff, woff2]";

// The extension deny_extensions looks at: a gzipped XML file (the sitemap-1.xml.gz a sitemap index
// lists) is "xml.gz", not an archive's "gz".
std::string link_extension(std::string_view url) {
  std::string ext = url_extension(url);
  if (ext == "gz" && to_lower(url.substr(0, url.find_first_of("?#"))).ends_with(".xml.gz")) return "xml.gz";
  return ext;
}

// Query parameters that only tag a link (campaigns, ad clicks, newsletters), never another page.
constexpr const char* kTrackingParams = "[utm_*, gclid, dclid, fbclid, msclkid, mc_eid, _hsenc, _hsmi, yclid]";

// The fields a URL's record carries besides its own (url, depth, from_url), as a JSON object: a
// seed's row from source.sqlite, what a parse node's `keep` gave a link. Empty when there are none.
// They go out with the URL, also after a spill or a resume.
std::string carried_fields(const Record& r) {
  std::string out;
  for (const auto& [name, value] : r.fields()) {
    if (name == "url" || name == "depth" || name == "from_url") continue;
    out += out.empty() ? '{' : ',';
    append_json_string(out, name);
    out += ':';
    append_json(out, value);
  }
  if (!out.empty()) out += '}';
  return out;
}

// Spill files that a killed run left behind (SIGKILL, an OOM kill, a run abandoned after
// abort_timeout: no destructor ran): `sluice-frontier-<pid>-<n>.db` in `dir` whose process is gone.
// A nightly crawl that keeps being killed would otherwise fill /tmp.
void remove_stale_spills(const std::string& dir) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (!name.starts_with("sluice-frontier-") || !name.ends_with(".db")) continue;
    const char* digits = name.c_str() + std::strlen("sluice-frontier-");
    char* end = nullptr;
    const long pid = std::strtol(digits, &end, 10);
    if (end == digits || *end != '-' || pid <= 0) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // alive, or not ours to judge
    std::filesystem::remove(entry.path(), ec);
  }
}

struct Scope {
  std::vector<std::unique_ptr<RE2>> allow, deny;
  std::unordered_set<std::string> deny_extensions;
  bool same_host = true;
  std::int64_t max_depth = -1;
  std::int64_t max_pages = 0;
  std::int64_t max_pages_per_host = 0;
  // `known`: a database and a query whose one column lists URLs not to fetch (done by earlier runs).
  std::string known_path, known_query;
  std::vector<std::string> strip_query;  // query parameters no URL keeps (tracking tags)
  bool sort_query = false;               // parameters in order of name
  // `key`: what makes two records one page, when the URL alone does not (a cursor in a POST body:
  // '{url} {after}'), rendered over the record the URL goes out as.
  std::optional<FieldTemplate> key;

  // A URL as the frontier keeps it (already normalized): strip_query, then sort_query.
  std::string canonical(std::string url) const {
    if (!strip_query.empty()) url = parse::strip_query(url, strip_query);
    if (sort_query) url = parse::sort_query(url);
    return url;
  }
};

using Clock = std::chrono::steady_clock;

// What the frontier did with a URL it was given: the rows of its "links" table.
enum class Outcome : std::size_t {
  seed,                // a seed, kept
  followed,            // a link, kept
  seen,                // let through before (in this run, or the run it resumes)
  known,               // in `known`
  max_depth,           // deeper than max_depth
  other_host,          // same_host, and on another host
  extension,           // deny_extensions
  allow,               // matches no `allow` pattern
  deny,                // matches a `deny` pattern
  max_pages,           // past max_pages
  max_pages_per_host,  // past max_pages_per_host
  no_url,              // a record without a url
};
constexpr std::size_t kOutcomes = static_cast<std::size_t>(Outcome::no_url) + 1;
constexpr const char* kOutcomeNames[kOutcomes] = {
    "seed",      "followed", "seen", "known",     "max_depth",          "other_host",
    "extension", "allow",    "deny", "max_pages", "max_pages_per_host", "no_url",
};

// How many URLs came out each way, with the first of each (frontier thread; main thread once it
// has joined).
class Outcomes {
 public:
  void add(Outcome o, const std::string& url) {
    auto i = static_cast<std::size_t>(o);
    if (counts_[i]++ == 0) first_[i] = url;
  }
  std::uint64_t count(Outcome o) const { return counts_[static_cast<std::size_t>(o)]; }

  // The rows of the "links" table: outcome, count and the first URL, the most frequent first.
  std::vector<Record> rows() const {
    std::vector<std::size_t> order;
    for (std::size_t i = 0; i < kOutcomes; ++i) {
      if (counts_[i] > 0) order.push_back(i);
    }
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return counts_[a] > counts_[b]; });
    std::vector<Record> rows;
    for (std::size_t i : order) {
      rows.push_back(row(i));
    }
    return rows;
  }

  // One row: outcome, count, first.
  Record row(std::size_t i) const {
    Record r;
    r.set("outcome", Value(kOutcomeNames[i]));
    r.set("count", Value(static_cast<std::int64_t>(counts_[i])));
    r.set("first", Value(first_[i]));
    return r;
  }

  // When the crawl followed none of the links its pages gave although some were in reach but for
  // the node's scope (same_host, allow, deny, deny_extensions; not max_depth, which says itself how
  // far to go): why, in one line.
  std::string nothing_followed() const {
    if (count(Outcome::followed) > 0) return {};
    std::uint64_t links = 0;
    for (std::size_t i = static_cast<std::size_t>(Outcome::followed); i < kOutcomes; ++i) links += counts_[i];
    std::string why;
    for (Outcome o : {Outcome::other_host, Outcome::allow, Outcome::deny, Outcome::extension}) {
      if (count(o) == 0) continue;
      why += fmt::format("{}{} {} (the first: {})", why.empty() ? "" : ", ", kOutcomeNames[static_cast<std::size_t>(o)],
                         count(o), first_[static_cast<std::size_t>(o)]);
    }
    if (why.empty()) return {};
    return fmt::format("the crawl followed none of the {} links its pages gave: {}; see the 'links' table", links, why);
  }

 private:
  std::uint64_t counts_[kOutcomes] = {};
  std::string first_[kOutcomes];
};

class Frontier final : public AsyncNode, public PermitSource {
 public:
  Frontier(std::string id, Scope scope, std::size_t window, std::size_t memory, std::size_t per_host_window,
           std::string spill_dir, RunState* state, const NodeContext& ctx)
      : id_(std::move(id)),
        scope_(std::move(scope)),
        window_(window),
        spill_dir_(spill_dir),
        state_(state),
        table_(ctx.table),
        notice_(ctx.notice),
        queues_(memory, per_host_window, std::move(spill_dir)) {
    if (state_) state_->track(*this, id_, true);
  }

  void start(AsyncOutput& out) override {
    out_ = &out;
    remove_stale_spills(spill_dir_);
    if (!scope_.known_path.empty()) load_known();
    if (state_) restore();
    thread_ = std::thread([this] { run(); });
  }

  void submit(Record&& record) override {
    {
      std::lock_guard lock(mutex_);
      incoming_.push_back(std::move(record));
    }
    cv_.notify_one();
  }

  // Cancel ends the parked URLs and drops the links that come: none of them is fetched any more.
  void cancel() override {
    {
      std::lock_guard lock(mutex_);
      cancelled_ = true;
    }
    cv_.notify_one();
  }
  // A graceful stop lets no URL out any more either, but the links of the pages that finish are
  // still accepted (seen, and recorded in the run state, where a resumed crawl finds them parked):
  // their pages are done, and are not fetched again.
  void wind_down() override {
    {
      std::lock_guard lock(mutex_);
      winding_down_ = true;
    }
    cv_.notify_one();
  }

  void stop() override {
    {
      std::lock_guard lock(mutex_);
      quit_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
    if (table_) table_("links", outcomes_.rows());
    if (const std::string why = outcomes_.nothing_followed(); !why.empty() && notice_) notice_(why);
  }

  // URLs wait because the window, or their hosts' per_host_window, is full: a sink that holds
  // records of URLs out should commit them.
  bool saturated() const override { return blocked_.load(std::memory_order_relaxed); }

  // A URL this frontier let out has left the graph, with everything derived from it.
  void on_release(std::uint64_t hash) noexcept override {
    if (state_) state_->url_done(id_, hash);
    window_slot_free(hash);
  }
  // The same, but a graceful stop dropped some of that work undone: the URL stays pending in the
  // run state, and a resumed crawl parks it again.
  void on_release_unfinished(std::uint64_t hash) noexcept override { window_slot_free(hash); }

 private:
  void window_slot_free(std::uint64_t hash) noexcept {
    {
      std::lock_guard lock(mutex_);
      --out_in_flight_;
      if (auto it = out_hosts_.find(hash); it != out_hosts_.end()) {
        queues_.done(it->second);
        out_hosts_.erase(it);
      }
    }
    cv_.notify_one();
  }

  void run() {
    pthread_setname_np(pthread_self(), "frontier");
    std::unique_lock lock(mutex_);
    while (true) {
      cv_.wait(lock, [&] {
        return quit_ || cancelled_ || !incoming_.empty() || (winding_down_ && queues_.size() > 0) ||
               (out_in_flight_ < window_ && queues_.ready());
      });
      if (cancelled_) {
        // Every parked URL is a submitted record that must end; none will be fetched now.
        blocked_ = false;
        std::size_t parked = queues_.size();
        std::deque<Record> incoming = std::move(incoming_);
        incoming_.clear();
        queues_.clear();
        lock.unlock();
        // Links not parked yet: their page is not done (the run state has not accepted them).
        for (const Record& r : incoming) r.mark_unfinished();
        out_->discard(parked + incoming.size());
        incoming.clear();  // outside the lock: their permits may be this frontier's (on_release locks)
        lock.lock();
        if (quit_) return;
        cv_.wait(lock, [&] { return quit_ || !incoming_.empty(); });
        continue;
      }
      if (quit_ && incoming_.empty() && queues_.size() == 0) return;
      std::deque<Record> batch = std::move(incoming_);
      incoming_.clear();
      lock.unlock();
      std::size_t dropped = 0;
      for (Record& r : batch) {
        try {
          const Outcome o = park(r);
          dropped += o == Outcome::seed || o == Outcome::followed ? 0 : 1;
        } catch (const NodeError& e) {  // the spill file failed (a full disk): the URL is not parked
          out_->fail(std::move(r), e.what());
        }
      }
      batch.clear();  // their permits (the page's limit slot) are released here
      if (dropped) out_->discard(dropped);
      if (table_ && Clock::now() >= next_table_) {  // live, for --metrics
        next_table_ = Clock::now() + std::chrono::seconds(1);
        table_("links", outcomes_.rows());
      }
      lock.lock();
      if (winding_down_) {  // parked URLs end here: the run state keeps them for a resumed crawl
        const std::size_t parked = queues_.size();
        queues_.clear();
        blocked_ = false;
        lock.unlock();
        if (parked) out_->discard(parked);
        out_->flush();
        lock.lock();
        continue;
      }
      while (out_in_flight_ < window_) {
        std::optional<HostQueues::Out> next;
        try {
          next = queues_.pop();
        } catch (const NodeError& e) {
          lock.unlock();
          lost_spill(e.what());
          lock.lock();
          break;
        }
        if (!next) break;
        ++out_in_flight_;
        const std::uint64_t hash = identity(next->url);
        out_hosts_.emplace(hash, next->host);
        lock.unlock();
        release(std::move(next->url), hash);
        lock.lock();
      }
      blocked_ = queues_.size() > 0;
      lock.unlock();
      out_->flush();
      lock.lock();
    }
  }

  // The spill file could not give its URLs back: they end as one failed record (routed by the
  // node's on_error, which by default fails the run with the file's error) and the rest discarded.
  void lost_spill(const std::string& message) {
    std::size_t parked;
    {
      std::lock_guard lock(mutex_);
      parked = queues_.size();
      queues_.clear();
    }
    Record lost;
    lost.set("url", Value(std::string()));
    out_->fail(std::move(lost), fmt::format("{} ({} parked URLs lost)", message, parked));
    if (parked > 1) out_->discard(parked - 1);
  }

  // Main thread, from start(): after every factory, so the query may name a table that a store of
  // this pipeline creates. The URLs are normalized as links are, and kept as a sorted list of hashes.
  void load_known() {
    const std::string& path = scope_.known_path;
    sqlite3* db = nullptr;
    sqlite3_stmt* st = nullptr;
    try {
      db = open_readonly(path);
      sqlite3_busy_timeout(db, 5000);
      std::vector<std::string> names;
      st = prepare_select(db, path, scope_.known_query, names);
      if (names.size() != 1) {
        throw NodeError(fmt::format("query returns {} columns: expected one, the URLs", names.size()));
      }
      int rc;
      while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
        if (!text) continue;
        const std::string url(text, static_cast<std::size_t>(sqlite3_column_bytes(st, 0)));
        const std::string normalized = parse::resolve_link(url, url);
        known_.push_back(url_hash(scope_.canonical(normalized.empty() ? url : normalized)));
      }
      if (rc != SQLITE_DONE) throw NodeError(fmt::format("query on '{}' failed: {}", path, sqlite3_errmsg(db)));
    } catch (const NodeError& e) {
      sqlite3_finalize(st);
      sqlite3_close(db);
      throw NodeError(std::string("known: ") + e.what());
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    std::sort(known_.begin(), known_.end());
    known_.erase(std::unique(known_.begin(), known_.end()), known_.end());
  }

  // A resumed run: the seen set, the seeds' hosts, and every URL that was parked or in flight.
  // Restored URLs were not submitted in this run, so they are adopted as if they had been.
  void restore() {
    const RunState::FrontierState& f = state_->frontier(id_);
    for (const std::uint64_t hash : f.seen) seen_.insert(hash);
    accepted_ = f.seen.size();
    if (scope_.max_pages_per_host > 0) {
      for (const auto& [origin, count] : f.origins) host_pages_[parse::url_host(origin + "/")] += count;
    }
    for (const auto& seed : f.seeds) seed_hosts_.insert(parse::url_host(seed));
    if (f.pending.empty()) return;
    out_->adopt(f.pending.size());
    for (const auto& u : f.pending) enqueue(parse::url_host(u.url), Parked{u.url, u.from_url, u.depth, u.fields});
  }

  void enqueue(const std::string& host, Parked p) {
    std::lock_guard lock(mutex_);
    queues_.push(host, std::move(p));
  }

  // Keeps `r`'s URL when it is new and in scope (seed or followed), else says why it is dropped.
  Outcome park(const Record& r) {
    const Outcome o = judge(r);
    const Value* url = r.get("url");
    outcomes_.add(o, url && url->as_string() ? *url->as_string() : std::string());
    return o;
  }

  Outcome judge(const Record& r) {
    const Value* url = r.get("url");
    if (!url || !url->as_string()) return Outcome::no_url;
    const bool seed = r.meta.depth == 0;
    std::string u = *url->as_string();
    // Links come normalized from the parse nodes; a seed is normalized the same way here, so that
    // "https://Example.com" and the site's links to "https://example.com/" are one page.
    if (seed) {
      if (std::string normalized = parse::resolve_link(u, u); !normalized.empty()) u = std::move(normalized);
    }
    // Tracking tags name no other page: ?utm_source=mail and the page without it are one URL.
    u = scope_.canonical(std::move(u));
    const std::string host = parse::url_host(u);
    if (seed && scope_.same_host) seed_hosts_.insert(host);
    // The page a link was found on was fetched: its URL after redirects counts as seen, so that a
    // link to it is not fetched again (a site whose links say http:// and redirect to https://: its
    // pages' https links were new URLs, and every page was fetched twice). A seed's page (a link at
    // depth 1) is where the seed landed (http://example.com/ -> https://www.example.com/): its host
    // is a seed's host too, or such a crawl ended at its first page.
    if (!seed && !scope_.key) {
      if (const Value* from = r.get("from_url"); from && from->as_string() && *from->as_string() != last_page_) {
        last_page_ = *from->as_string();
        if (const std::string page = parse::resolve_link(last_page_, last_page_); !page.empty())
          seen_.insert(url_hash(scope_.canonical(page)));
        if (r.meta.depth == 1 && scope_.same_host) seed_hosts_.insert(parse::url_host(last_page_));
      }
    }
    if (!seed && scope_.max_depth >= 0 && r.meta.depth > scope_.max_depth) return Outcome::max_depth;
    if (!seed && scope_.same_host && !seed_hosts_.count(host)) return Outcome::other_host;
    if (!seed && !scope_.deny_extensions.empty() && scope_.deny_extensions.count(link_extension(u)))
      return Outcome::extension;
    // allow and deny pick the links to follow, as deny_extensions does: a seed is always fetched (a
    // seed at the site's root with allow: ['/catalogue/'] was dropped, and the crawl did nothing).
    if (!seed && !scope_.allow.empty() &&
        std::none_of(scope_.allow.begin(), scope_.allow.end(), [&](auto& re) { return RE2::PartialMatch(u, *re); })) {
      return Outcome::allow;
    }
    if (!seed &&
        std::any_of(scope_.deny.begin(), scope_.deny.end(), [&](auto& re) { return RE2::PartialMatch(u, *re); })) {
      return Outcome::deny;
    }
    if (!seed && std::binary_search(known_.begin(), known_.end(), url_hash(u))) return Outcome::known;
    auto parked = [&](std::string target) {
      const Value* from = r.get("from_url");
      return Parked{std::move(target), from && from->as_string() ? *from->as_string() : "", r.meta.depth,
                    carried_fields(r)};
    };
    std::optional<Parked> keyed;  // with `key`, the URL as it goes out, whose key is its identity
    if (scope_.key) keyed = parked(u);
    const std::uint64_t hash = keyed ? identity(*keyed) : url_hash(u);
    if (!seen_.insert(hash)) return Outcome::seen;
    if (scope_.max_pages > 0 && static_cast<std::int64_t>(accepted_) >= scope_.max_pages) return Outcome::max_pages;
    if (scope_.max_pages_per_host > 0) {
      std::uint64_t& pages = host_pages_[host];
      if (static_cast<std::int64_t>(pages) >= scope_.max_pages_per_host) return Outcome::max_pages_per_host;
      ++pages;
    }
    ++accepted_;
    Parked p = keyed ? std::move(*keyed) : parked(std::move(u));
    // Recorded before the page that found it is done (its permits are released after this).
    if (state_) state_->url_accepted(id_, RunState::Url{hash, p.url, p.from_url, p.depth, p.fields});
    enqueue(host, std::move(p));
    return seed ? Outcome::seed : Outcome::followed;
  }

  // The record a parked URL goes out as.
  static Record outgoing(Parked p) {
    Record next;
    next.meta.depth = p.depth;
    next.meta.origin_url = p.from_url;
    next.set("url", Value(std::move(p.url)));
    next.set("depth", Value(static_cast<std::int64_t>(p.depth)));
    if (!p.from_url.empty()) next.set("from_url", Value(std::move(p.from_url)));
    if (!p.fields.empty()) parse::set_json_fields(next, p.fields);
    return next;
  }

  // What the seen set and the URL's permit know it by: the hash of its URL, or with `key` of the
  // key rendered over the record it goes out as (the same before a spill and after, or a resume).
  std::uint64_t identity(const Parked& p) const {
    return scope_.key ? url_hash(scope_.key->render(outgoing(p))) : url_hash(p.url);
  }

  // Lets a parked URL out, with a permit of this frontier's window.
  void release(Parked p, std::uint64_t hash) {
    Record next = outgoing(std::move(p));
    next.permits.push_back(std::make_shared<const Permit>(*this, hash));
    out_->complete(std::move(next));
  }

  std::string id_;
  Scope scope_;
  std::size_t window_;
  std::string spill_dir_;
  RunState* state_;
  std::function<void(std::string, std::vector<Record>)> table_;
  std::function<void(std::string)> notice_;
  AsyncOutput* out_ = nullptr;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable cv_;
  // guarded by mutex_:
  std::deque<Record> incoming_;
  HostQueues queues_;
  std::unordered_map<std::uint64_t, std::uint32_t> out_hosts_;  // URLs out (hash) -> their host in queues_
  std::size_t out_in_flight_ = 0;
  bool cancelled_ = false, winding_down_ = false, quit_ = false;
  std::atomic<bool> blocked_{false};  // URLs are parked that the window or their host's cap holds back
  // frontier thread only:
  SeenUrls seen_;                                              // URLs let through, and the pages links came from
  std::uint64_t accepted_ = 0;                                 // URLs let through (max_pages)
  std::unordered_map<std::string, std::uint64_t> host_pages_;  // URLs let through by host (max_pages_per_host)
  std::string last_page_;                                      // the page of the last link (its URL is in seen_)
  Outcomes outcomes_;                                          // what came of each URL given
  Clock::time_point next_table_{};                             // when the links table is given next
  std::set<std::string> seed_hosts_;  // the seeds' hosts, and the hosts their pages redirected to
  std::vector<std::uint64_t> known_;  // hashes of the `known` URLs, sorted
};

std::string check_param_name(const Value& v) {
  const std::string name = v.to_text();
  if (name.empty() || name == "*") return "expected a parameter name, or the start of one followed by * (utm_*)";
  const auto star = name.find('*');
  if (name.find_first_of("&=#?") != std::string::npos || (star != std::string::npos && star + 1 != name.size()))
    return fmt::format("'{}' is not a parameter name ('*' only at its end; no &, =, # or ?)", name);
  return "";
}

std::string check_pattern(const Value& v) {
  RE2 re(v.to_text(), RE2::Quiet);
  return re.ok() ? "" : fmt::format("invalid regular expression '{}': {}", v.to_text(), re.error());
}

}  // namespace

NodeType frontier_type() {
  NodeType t;
  t.name = "frontier";
  t.kind = NodeKind::async;
  t.summary = "keeps in-scope URLs never seen before (seeds at depth 0, links deeper) and feeds them to fetch";
  t.ports = transform_ports();
  t.breaks_cycles = true;  // its URLs go out with slots of their own, and seen ones are dropped
  t.schema = Schema({
      FieldSpec::list("allow", FieldSpec::string("pattern", "RE2").validated_by(check_pattern),
                      "a link must match one of these to be followed (when given); seeds are kept")
          .with_default(""),
      FieldSpec::list("deny", FieldSpec::string("pattern", "RE2").validated_by(check_pattern),
                      "a link matching any of these is dropped; seeds are kept")
          .with_default(""),
      FieldSpec::list("deny_extensions", FieldSpec::string("extension", "without the dot"),
                      "links to files with these extensions are dropped (images, archives, media, office "
                      "documents, PDF, ...; a gzipped sitemap's .xml.gz is xml.gz, not gz); seeds are kept; [] "
                      "follows every link")
          .with_default(kBinaryExtensions),
      FieldSpec::list("strip_query",
                      FieldSpec::string("name", "a query parameter; a trailing * matches any ending (utm_*)")
                          .validated_by(check_param_name),
                      "query parameters removed from every URL (seeds, links, known) before it is checked and "
                      "fetched, so that one page with tracking tags is one URL; [] keeps them all")
          .with_default(kTrackingParams),
      FieldSpec::boolean("sort_query",
                         "put every URL's query parameters in order of name, so that ?b=2&a=1 and ?a=1&b=2 are one "
                         "page (the URL is fetched so)")
          .with_default("false"),
      FieldSpec::string("key",
                        "what makes a page: a template over the record a URL goes out as (its url, depth, from_url "
                        "and carried fields), for pages of one URL told apart by a field, such as a cursor that "
                        "parse.json's next_field gives for a POST body ('{url} {after}'); default: the URL")
          .validated_by(check_template),
      FieldSpec::boolean("same_host", "follow links only to the hosts of the seeds (and of the pages they redirect to)")
          .with_default("true"),
      FieldSpec::integer("max_depth", "link depth from a seed; -1: unlimited").with_default("-1").at_least(-1),
      FieldSpec::integer("max_pages", "distinct URLs let through at most; 0: unlimited").with_default("0").at_least(0),
      FieldSpec::integer("max_pages_per_host", "distinct URLs let through of each host at most; 0: unlimited")
          .with_default("0")
          .at_least(0),
      FieldSpec::integer("window", "URLs let out and not yet done (with what derives from them) at most")
          .with_default("1024")
          .at_least(1),
      FieldSpec::integer("per_host_window",
                         "URLs of one host let out and not yet done at most, so that a slow site cannot hold the "
                         "window and the limit's slots while other sites wait; 0: only the window")
          .with_default("0")
          .at_least(0),
      FieldSpec::integer("memory", "parked URLs kept in memory; more spill to a SQLite file")
          .with_default("100000")
          .at_least(1),
      FieldSpec::string(
          "spill_dir",
          "where the spill file lives (deleted at the end; one a killed run left is deleted when a crawl starts)")
          .with_default("/tmp"),
      FieldSpec::object_of(
          "known",
          Schema({
              FieldSpec::string("path", "the SQLite database (opened read-only)").make_required(),
              FieldSpec::string("query", "one SELECT of one column: the URLs").make_required(),
          }),
          "URLs not to fetch again, from an earlier run's database: links to them are dropped (seeds are kept). "
          "Read when the run starts"),
  });
  t.factory = [](const NodeContext& ctx) -> std::unique_ptr<Node> {
    const Config& c = ctx.config;
    Scope scope;
    for (const auto& p : c.list("allow")) scope.allow.push_back(std::make_unique<RE2>(std::get<Value>(p.v).to_text()));
    for (const auto& p : c.list("deny")) scope.deny.push_back(std::make_unique<RE2>(std::get<Value>(p.v).to_text()));
    for (const auto& e : c.list("deny_extensions")) {
      std::string ext = to_lower(std::get<Value>(e.v).to_text());
      if (ext.starts_with('.')) ext.erase(0, 1);
      if (!ext.empty()) scope.deny_extensions.insert(std::move(ext));
    }
    for (const auto& n : c.list("strip_query")) scope.strip_query.push_back(std::get<Value>(n.v).to_text());
    scope.sort_query = c.boolean("sort_query");
    if (c.has("key")) scope.key = FieldTemplate::compile(c.string("key"));
    scope.same_host = c.boolean("same_host");
    scope.max_depth = c.integer("max_depth");
    scope.max_pages = c.integer("max_pages");
    scope.max_pages_per_host = c.integer("max_pages_per_host");
    if (c.has("known")) {
      scope.known_path = c.object("known").string("path");
      scope.known_query = c.object("known").string("query");
    }
    return std::make_unique<Frontier>(ctx.id, std::move(scope), static_cast<std::size_t>(c.integer("window")),
                                      static_cast<std::size_t>(c.integer("memory")),
                                      static_cast<std::size_t>(c.integer("per_host_window")), c.string("spill_dir"),
                                      ctx.state, ctx);
  };
  t.example = R"(- id: frontier
  type: frontier
  max_depth: 3
  deny: ['\?sort=', '/cart'])";
  return t;
}

}  // namespace sluice::nodes
