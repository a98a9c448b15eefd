// HttpLoop's response cache (`cache`): the I/O thread answers a request from it or asks with the
// cached response's validators, and hands what to look up and to store to the node's cache thread,
// which alone touches the SQLite file (ResponseCache).
#include <fmt/format.h>

#include "../text.hpp"
#include "transfer.hpp"

namespace sluice::fetch {

void HttpLoop::set_cache_key(Job& job) const {
  job.cache_url = job.url;
  job.cache_key = cache_key(job.method, job.url, job.body, job.headers);
}

bool HttpLoop::cache_usable(const CachedResponse& found) const {
  return (opt_.ok_status.contains(found.status) || opt_.cache->keep_status.contains(found.status)) &&
         found.body.size() <= opt_.max_body &&
         (opt_.content_types.empty() ||
          opt_.content_types.allows(found.content_type ? found.content_type->c_str() : nullptr));
}

// A request answered from the cache, with the fields a fetch gives it. Cache thread, `easy` null:
// no request was made (no timings, no attempts, no proxy; fetched_at is when the response came).
// I/O thread (the caller holds the result): `easy` the transfer whose 304 confirmed the response
// (its timings and attempts), or null for a stale response answering a failed host.
void HttpLoop::complete_from_cache(std::unique_ptr<Job> job, CachedResponse&& found, CURL* easy) {
  Record& r = job->record;
  if (!opt_.ok_status.contains(found.status)) {  // a failure kept with keep_status: the same failure again
    r.set("final_url", Value(std::move(found.final_url)));
    r.set("status", Value(static_cast<std::int64_t>(found.status)));
    r.set("content_type", found.content_type ? Value(std::move(*found.content_type)) : Value());
    for (std::size_t i = 0; i < keep_fields_.size(); ++i) {
      auto value = cached_header(found.headers, opt_.keep_headers[i]);
      r.set(keep_fields_[i], value ? Value(std::move(*value)) : Value());
    }
    if (opt_.error_body) r.set(opt_.body_field, Value(std::move(found.body)));
    r.set("reason", Value(std::string(reason_name(Reason::http_status))));
    r.set("attempts", Value(static_cast<std::int64_t>(job->attempts)));
    r.set("cached", Value(true));
    out_->fail(std::move(r), fmt::format("HTTP {} (kept in the cache '{}')", found.status, cache_->path()));
    return;
  }
  const auto put = field_setter(r);
  put("final_url", Value(std::move(found.final_url)));
  put("status", Value(static_cast<std::int64_t>(found.status)));
  put("content_type", found.content_type ? Value(std::move(*found.content_type)) : Value());
  for (std::size_t i = 0; i < keep_fields_.size(); ++i) {
    auto value = cached_header(found.headers, opt_.keep_headers[i]);
    put(keep_fields_[i], value ? Value(std::move(*value)) : Value());
  }
  put(opt_.body_field, Value(std::move(found.body)));
  constexpr std::pair<const char*, CURLINFO> kTimings[] = {{"time_dns", CURLINFO_NAMELOOKUP_TIME_T},
                                                           {"time_connect", CURLINFO_CONNECT_TIME_T},
                                                           {"time_ttfb", CURLINFO_STARTTRANSFER_TIME_T},
                                                           {"time_total", CURLINFO_TOTAL_TIME_T}};
  for (const auto& [name, info] : kTimings) {
    curl_off_t us = 0;
    if (easy) curl_easy_getinfo(easy, info, &us);
    put(name, Value(static_cast<double>(us) / 1e6));
  }
  const int attempts = job->attempts;  // 0 for an answer without a request
  put("attempts", Value(static_cast<std::int64_t>(attempts)));
  if (!opt_.proxies.empty())
    put("proxy", job->proxy >= 0 && easy ? Value(proxies_[static_cast<std::size_t>(job->proxy)].shown) : Value());
  put("cached", Value(true));
  put("fetched_at", Value(found.fetched_at));
  r.meta.attempt = attempts;
  out_->complete(std::move(r));
}

void HttpLoop::fail_not_cached(std::unique_ptr<Job> job, std::string_view why) {
  Record& r = job->record;
  r.set("status", Value());
  r.set("reason", Value(std::string(reason_name(Reason::not_cached))));
  r.set("attempts", Value(std::int64_t{0}));
  out_->fail(std::move(r), fmt::format("not_cached: {} '{}': {} '{}' (offline: true makes no request)", job->method,
                                       job->cache_url, why, cache_->path()));
}

// I/O thread: the server answered a request for a stale response with 304 Not Modified: the
// response kept is the record's, and it is fresh again from now.
void HttpLoop::revalidated(std::unique_ptr<Job> job, Transfer& t, HostStats& stats) {
  CachedResponse found = std::move(*job->stale);
  if (opt_.ok_status.contains(found.status)) ++stats.ok;  // else a failure kept with keep_status
  found.fetched_at = unix_now();
  CachedResponse touch;
  touch.key = found.key;
  touch.fetched_at = found.fetched_at;
  touch.refresh = true;
  {
    std::lock_guard lock(cache_mutex_);
    cache_stores_.push_back(std::move(touch));
  }
  cache_wake_.notify_one();
  hold_result();
  complete_from_cache(std::move(job), std::move(found), t.easy);
}

// I/O thread: the response of a successful job, to be stored by the cache thread.
void HttpLoop::queue_store(const Job& job, CURL* easy, const Bytes& body, long status, const char* content_type,
                           const char* final_url, double fetched_at) {
  CachedResponse r;
  r.key = job.cache_key;
  r.url = job.cache_url;
  r.final_url = final_url ? std::string(final_url) : job.cache_url;
  r.status = status;
  if (content_type) r.content_type.emplace(content_type);
  for (curl_header* h = nullptr; (h = curl_easy_nextheader(easy, CURLH_HEADER, -1, h));) {
    r.headers.append(nodes::to_lower(h->name)).append(": ").append(h->value).push_back('\n');
  }
  r.body = body;
  r.fetched_at = fetched_at;
  {
    std::lock_guard lock(cache_mutex_);
    if (cache_backlog_ + body.size() > kMaxCacheBacklog) {
      ++cache_skipped_;
      return;
    }
    cache_backlog_ += body.size();
    cache_stores_.push_back(std::move(r));
  }
  cache_wake_.notify_one();
}

void HttpLoop::cache_run() {
  pthread_setname_np(pthread_self(), ("cache:" + node_id_).substr(0, 15).c_str());
  std::unique_lock lock(cache_mutex_);
  while (true) {
    cache_wake_.wait(lock, [this] { return cache_quit_ || !cache_lookups_.empty() || !cache_stores_.empty(); });
    auto lookups = std::move(cache_lookups_);
    auto stores = std::move(cache_stores_);
    cache_lookups_.clear();
    cache_stores_.clear();
    cache_backlog_ = 0;
    const bool quit = cache_quit_;
    lock.unlock();
    // A cache is a convenience: one that fails (a full disk, a damaged file) is left alone for the
    // rest of the run, which goes on over the network.
    const auto broken = [this](const NodeError& e) {
      if (!cache_broken_) notice(std::string(e.what()) + "; the rest of the run does without the cache");
      cache_broken_ = true;
    };
    if (!stores.empty() && !cache_broken_) {
      try {
        cache_->store(stores);
        const auto refreshed = static_cast<std::uint64_t>(
            std::count_if(stores.begin(), stores.end(), [](const CachedResponse& r) { return r.refresh; }));
        cache_revalidated_ += refreshed;
        cache_stored_ += stores.size() - refreshed;
      } catch (const NodeError& e) {
        broken(e);
      }
    }
    stores.clear();  // their bodies go back to the pool
    // Answers and misses go on every kCacheChunk lookups, not only after all of them: a disk that
    // is slow to read must not hold back what is known.
    std::vector<std::unique_ptr<Job>> misses;
    std::size_t found = 0;
    const auto pass_on = [&] {
      if (found > 0) out_->flush();
      found = 0;
      if (misses.empty()) return;
      {
        std::lock_guard incoming(incoming_mutex_);
        for (auto& job : misses) incoming_.push_back(std::move(job));
      }
      misses.clear();
      if (sleeping_.exchange(false)) curl_multi_wakeup(multi_);
    };
    for (std::size_t i = 0; i < lookups.size(); ++i) {
      auto& job = lookups[i];
      std::string_view why = "it is not in the cache";  // for cache.offline, before the cache's path
      if (!cancel_.load() && !cache_broken_) {
        try {
          auto response = cache_->find(job->cache_key);
          if (response && !cache_usable(*response)) {
            why = "the node does not take the response kept for it now (ok_status, content_types, max_body) in";
            response.reset();
          }
          if (response) {
            if (!response->stale || opt_.cache->offline) {
              complete_from_cache(std::move(job), std::move(*response), nullptr);
              ++cache_hits_;
              ++found;
            } else if (opt_.cache->stale_if_error ||
                       (response->final_url == response->url && (cached_header(response->headers, "etag") ||
                                                                 cached_header(response->headers, "last-modified")))) {
              // Asked for again, with its validators when it has them: a 304 keeps it
              // (revalidated()); with stale_if_error, a failure of its host does (fail()).
              job->stale = std::make_unique<CachedResponse>(std::move(*response));
            }
          }
        } catch (const NodeError& e) {
          broken(e);
        }
      }
      if (job && opt_.cache->offline && !cancel_.load()) {
        fail_not_cached(std::move(job), cache_broken_ ? "it cannot be read from the cache" : why);
        ++found;
      }
      if (job) misses.push_back(std::move(job));
      if ((i + 1) % kCacheChunk == 0) pass_on();
    }
    pass_on();
    if (const auto now = Clock::now(); now >= next_cache_table_) {
      give_cache_table();
      next_cache_table_ = now + kLiveTableEvery;
    }
    lock.lock();
    if (quit && cache_lookups_.empty() && cache_stores_.empty()) break;
  }
}

// After the I/O thread: what it queued last is stored before the thread ends.
void HttpLoop::stop_cache() {
  if (!cache_thread_.joinable()) return;
  {
    std::lock_guard lock(cache_mutex_);
    cache_quit_ = true;
  }
  cache_wake_.notify_one();
  cache_thread_.join();
  if (cache_skipped_ > 0) {
    notice(fmt::format("cache '{}': {} response{} not stored: they came faster than the disk took them", cache_->path(),
                       cache_skipped_, cache_skipped_ == 1 ? " was" : "s were"));
  }
  give_cache_table();
}

// The report's table "cache" (also while the run goes, for --metrics): what the cache answered and
// took. Cache thread, or the main thread once it has ended.
void HttpLoop::give_cache_table() {
  if (!opt_.table) return;
  std::uint64_t skipped = 0;
  {
    std::lock_guard lock(cache_mutex_);
    skipped = cache_skipped_;
  }
  Record row;
  row.append("file", Value(cache_->path()));
  row.append("from_cache", Value(static_cast<std::int64_t>(cache_hits_)));
  row.append("revalidated", Value(static_cast<std::int64_t>(cache_revalidated_)));
  row.append("stale_if_error", Value(static_cast<std::int64_t>(cache_stale_served_.load(std::memory_order_relaxed))));
  row.append("stored", Value(static_cast<std::int64_t>(cache_stored_)));
  row.append("not_stored", Value(static_cast<std::int64_t>(skipped)));
  std::vector<Record> rows;
  rows.push_back(std::move(row));
  opt_.table("cache", std::move(rows));
}

}  // namespace sluice::fetch
