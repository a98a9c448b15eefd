// The fetch node's I/O thread: one libcurl multi loop that owns every curl handle. TBB workers
// only queue records (submit) and wake it; admission per host (concurrency, rate, circuit breaker),
// retries with backoff, redirects and cancellation all happen on this thread, on timers.
#pragma once

#include <curl/curl.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "../core/file_names.hpp"
#include "aws_process.hpp"
#include "cache.hpp"
#include "credentials.hpp"
#include "options.hpp"
#include "policy.hpp"
#include "robots.hpp"
#include "sluice/node.hpp"
#include "sluice/template.hpp"

namespace sluice::fetch {

// Body buffers, reused: a finished record's body returns here when its last reference goes (on
// whatever thread drops it), and the I/O thread writes the next body into it instead of into fresh
// memory. Bounded: buffers above kMaxCapacity, and any beyond kMaxBuffers or kMaxBytes in all, are
// freed.
class BodyPool : public std::enable_shared_from_this<BodyPool> {
 public:
  // An empty string, with the capacity of a returned buffer when there is one. Any thread.
  std::string take();
  // Hands `body` to records as Bytes; its buffer comes back to this pool with the last reference.
  Bytes share(std::string&& body);
  // Returns a buffer that no record holds. Any thread.
  void give(std::string&& buffer);

 private:
  static constexpr std::size_t kMaxCapacity = 1 << 20;
  static constexpr std::size_t kMaxBytes = 4 << 20;
  static constexpr std::size_t kMaxBuffers = 256;
  std::mutex mutex_;
  std::vector<std::string> free_;
  std::size_t bytes_ = 0;  // capacity held in free_
};

class HttpLoop {
 public:
  HttpLoop(FetchOptions options, std::string node_id);
  ~HttpLoop();
  HttpLoop(const HttpLoop&) = delete;
  HttpLoop& operator=(const HttpLoop&) = delete;

  void start(AsyncOutput& out);
  // Queues a record for the I/O thread; wake() afterwards (once for a burst of submits).
  void submit(Record&& record);
  // Wakes the I/O thread if it sleeps, so that it takes what was submitted.
  void wake();
  void cancel();
  // A graceful stop: transfers under way finish, except downloads a later run can continue (they
  // stop, their files kept); requests that are not under way (waiting for their host's turn, its
  // rate, robots.txt or a retry's backoff, and any submitted later) end unfetched.
  void wind_down();
  void stop();

  // Implementation details, declared here for the curl callbacks.
  struct Job;
  struct Transfer;

 private:
  // What happened with a host over the run, for the report's table of hosts (stop()). Kept after
  // the host itself is forgotten; the first kMaxHostStats hosts each have their own, later ones
  // share one row.
  struct HostStats {
    std::uint64_t requests = 0;           // transfers that ended: pages, retries, redirect hops, robots.txt
    std::uint64_t by_class[7] = {};       // their responses by status class (1xx-5xx); [0]: none, [6]: 600 and above
    std::uint64_t bytes = 0;              // body bytes received (decoded)
    double seconds = 0, max_seconds = 0;  // the transfers' total times
    std::uint64_t ok = 0;                 // records fetched
    std::uint64_t retries = 0;            // attempts scheduled again after a failure
    std::uint64_t breaker_opened = 0;
    std::uint64_t failed_by[static_cast<int>(Reason::other) + 1] = {};  // records failed, by reason
    std::uint64_t failed() const;
  };

  struct Host {
    const HostLimits* limits = nullptr;  // per_host, rate and burst: the node's, or a `hosts` entry's
    const FetchOptions::Auth* auth = nullptr;  // its requests' credentials: auth_for()
    HostStats* stats = nullptr;
    std::deque<std::unique_ptr<Job>> waiting;
    int in_flight = 0;
    int retries_scheduled = 0;  // jobs of this host waiting on a retry timer
    TokenBucket bucket;
    CircuitBreaker breaker;
    bool wake_scheduled = false;
    bool queued = false;  // in queued_hosts_ (it has waiting jobs)
    // retrying: a fetch of robots.txt failed (5xx, no answer) and another waits for its backoff.
    enum class Robots { unknown, fetching, retrying, ready } robots = Robots::unknown;
    int robots_attempts = 0;
    // Its robots.txt found no descriptor (asks_again()): since when with no transfer in flight, and
    // how many of its failed lookups were repeated for a shortage (kShortLookups at most).
    Clock::time_point robots_lone_since{};
    int robots_lookups_in_shortage = 0;
    Clock::time_point robots_at{};  // when its rules became ready; fetched again after robots_max_age
    bool crawl_delay = false;       // `bucket` follows its robots.txt's Crawl-delay, not rate and burst
    RobotsRules rules;
    // Set while the host is disallowed because its robots.txt could not be fetched (5xx, 429, no
    // answer) after every attempt: why, for its jobs' errors, and the reason they fail with (the
    // transport's, or robots for an HTTP status). Fetched again after circuit_breaker's
    // recovery_timeout, not robots_max_age: the host is down, not ruled out.
    std::optional<std::pair<Reason, std::string>> robots_unreachable;
    // Set while its robots.txt asks for a Crawl-delay beyond max_crawl_delay: its jobs' error.
    std::optional<std::string> delay_refused;
    Clock::time_point last_used{};
    // A 429 or 503 with Retry-After asks the client to wait: no request of the host starts before
    // this (capped by retries.max), not only the retry of the one that got the answer.
    Clock::time_point paused_until{};
    bool quota_noticed = false;  // a notice said that its rate limit was used up (once per host)
    // adaptive: the requests it may have in flight now (0: not set yet, its per_host), and when that
    // was last halved (transfers started before then do not halve it again: one cut per overload).
    double allowed = 0;
    Clock::time_point cut_at{};
  };
  using Hosts = std::unordered_map<std::string, Host>;
  static constexpr std::size_t kMaxHostStats = 10000;
  // The stats of the host `key`: its own row, or past kMaxHostStats hosts the shared one.
  HostStats& stats_of(const std::string& key);  // for a host not in hosts_ (a failure's)
  HostStats& stats_of(const std::string& key, Host& host) {
    if (!host.stats) host.stats = &stats_of(key);
    return *host.stats;
  }
  void count_transfer(HostStats& stats, CURL* easy, long status, std::size_t body_bytes);
  // The rows of the report's table of hosts: the hosts with the most failures, then the most
  // requests, first; at most `limit` of them.
  std::vector<Record> host_rows(std::size_t limit = SIZE_MAX) const;
  // While the loop runs it gives the table of its first kLiveHostRows hosts every kLiveTableEvery
  // (the run's progress, which --metrics serves, carries it); stop() gives the whole table.
  static constexpr std::size_t kLiveHostRows = 100;
  static constexpr std::chrono::seconds kLiveTableEvery{1};
  Clock::time_point next_table_{};
  Clock::time_point next_stall_check_{};  // read_timeout: when end_stalled() looks next
  struct Timer {
    std::unique_ptr<Job> job;  // a retry; null: wake `host` for admission
    std::string host;
    bool robots = false;  // with `host`: fetch its robots.txt again
    bool token = false;   // oauth2: ask for an access token again (a failed request's backoff is over)
    bool endpoint_keys = false;  // aws_sigv4: ask the container's endpoint for keys again (likewise)
  };

  void run();
  void take_incoming();
  void accept(std::unique_ptr<Job> job);
  void enqueue(std::unique_ptr<Job> job, bool front);
  void fire_timers(Clock::time_point now);
  void admit_all(Clock::time_point now);
  bool forgettable(const Host& host, Clock::time_point now) const;
  void forget_idle_hosts(Clock::time_point now);
  void admit(const std::string& key, Host& host, Clock::time_point now);
  void start_transfer(std::unique_ptr<Job> job, Host& host, bool probe);
  void load_cookies();
  void start_robots(const std::string& key, Host& host);
  void finish_robots(Transfer& t, CURLcode code);
  std::unique_ptr<Transfer> take_transfer(const std::string& url);
  // oauth2: the access token, shared by the fetch nodes of the process whose oauth2 settings are the
  // same (shared_token()): one request for a token serves them all, and they send one refresh token,
  // which a server that rotates refresh tokens voids when it answers (a second node's copy would fail
  // its next refresh). Jobs wait in their hosts' queues while there is none (admit_all()). The next
  // one is asked for at refresh_at, a tenth of the token's life (at most a minute) before expires_at,
  // and jobs go on with this one meanwhile; one loop asks (`asker`), the others wait for it.
 public:
  struct SharedToken {
    std::mutex mutex;              // guards what follows; held briefly by each loop's admission turn
    std::string header;            // "Authorization: Bearer <token>"; "": none yet
    std::uint64_t generation = 0;  // of `header`: 1 for the first token, 2 for the next, ...
    Clock::time_point expires_at{}, refresh_at{};
    const HttpLoop* asker = nullptr;  // whose request for a token is under way, or waits for its backoff
    // The latest request failed for good: the error of the jobs that wait, until failed_until
    // (circuit_breaker's recovery_timeout), when a token is asked for again.
    std::optional<std::string> failure;
    Clock::time_point failed_until{};
    std::string refresh;           // the refresh token grant's current refresh token
    std::string form;              // the request's body
    bool told_rotated = false;     // the notice that the server replaced a refresh token from the pipeline was given
    std::vector<HttpLoop*> loops;  // those that share it, woken when it changes or cannot be had
  };

 private:
  struct Token {
    std::shared_ptr<SharedToken> shared;
    std::string header;  // shared->header as of `generation` (I/O thread only, read without a lock)
    std::uint64_t generation = 0;
    bool asking = false;           // this loop is shared->asker
    Clock::time_point asked_at{};  // when the request under way was sent: the token's life counts from then
    int attempts = 0;              // of the request under way
    std::string host;              // the token URL's host key, for the table of hosts
    std::string user, password;    // client_auth: basic: the client's id and secret, form-encoded
    std::optional<JwtKey> jwt;     // the JWT bearer grant's key
    bool impersonating = false;    // the request under way exchanges the grant's token (impersonation_url)
  };
  Token token_;
  // Whether jobs may start: a token is there and has not expired. Asks for one when needed (and none
  // of the other loops does), and fails the waiting jobs while the latest request has failed.
  bool token_usable(Clock::time_point now);
  // token_'s user, password and host, and the shared token of these settings (its form and refresh
  // token made by the first loop), when the loop is made.
  void prepare_token_request();
  void build_token_form(SharedToken& s) const;  // s.form, from the options and s.refresh (s locked)
  // A new refresh token from the server (RFC 6749 6: the old one may be void now): used from now on,
  // and written to refresh_token_file; what to say about it, if anything (s locked).
  std::string rotate_refresh_token(SharedToken& s, std::string_view refresh) const;
  // This loop's request for a token ends without one for the others (cancelled, or its loop stops):
  // another loop may ask.
  void give_up_token_request();
  void wake_token_sharers(SharedToken& s);  // (s locked)
  void start_token(Clock::time_point now);
  using TokenFileReader = std::optional<std::string> (*)(const std::string&, std::string&);
  bool add_file_token(std::string& form, const std::string& path, TokenFileReader read, std::string_view name);
  void finish_token(Transfer& t, CURLcode code);
  // A token request (to `url`) that got no response: its address refused, or the transfer failed.
  // Fails it with `from` and the reason (token_failed()) and returns true; false when a response came.
  bool token_unanswered(Transfer& t, CURLcode code, bool no_socket, const std::string& from, const std::string& url);
  // Google's service account impersonation: the grant's `token` exchanged for the service account's.
  void start_impersonation(std::string_view token);
  void finish_impersonation(Transfer& t, CURLcode code);
  // A token to send from now on, to expire `lifetime` after it was asked for (none: until a 401).
  void token_received(std::string_view token, std::optional<nanoseconds> lifetime);
  void token_failed(std::string message, bool retryable, std::optional<nanoseconds> wait);
  void set_options(CURL* e);
  // A handle for `t` with the node's options: a copy of template_'s (cheaper than setting each),
  // with what points to `t`.
  CURL* fresh_handle(Transfer& t);
  CURL* template_ = nullptr;  // set_options()'s handle, never performed
  void recycle(std::unique_ptr<Transfer> t);
  void finish(CURL* easy, CURLcode code);
  int pick_proxy(Clock::time_point now);
  void note_proxy(int index, bool failed, Clock::time_point now);
  void conclude(Transfer& t, CURLcode code);
  // `rate_limited`: a 403 or 429 whose rate-limit headers say the window's requests are used up,
  // retried (when attempts are left) whatever retries.on_status says. `sent`: some of the request
  // reached the server (RetryPolicy::may_repeat; always so when it answered).
  void retry_or_fail(std::unique_ptr<Job> job, Reason reason, long status, std::string message, nanoseconds wait,
                     bool rate_limited = false, bool sent = true);
  // retry_or_fail()'s first half: true when a retry was scheduled (`job` moved to its timer); else
  // `message` may say why it was not, and the caller fails the job.
  bool retry(std::unique_ptr<Job>& job, Reason reason, long status, std::string& message, nanoseconds wait,
             bool rate_limited = false, bool sent = true);
  void set_response_fields(Record& r, CURL* easy, Bytes body = Bytes()) const;
  void add_idempotency_key(Job& job, Record& record);
  void end_stalled(Clock::time_point now);
  std::string derived_key(const Job& job, const Record& record);
  // A 429 or 503's Retry-After (seconds or an HTTP date), capped by retries.max; none for other statuses.
  std::optional<nanoseconds> retry_after(CURL* easy, long status) const;
  void succeed(std::unique_ptr<Job> job, Transfer& t, HostStats& stats);
  struct FieldSetter {
    Record& record;
    bool append;  // the record has none of fetch's fields: no lookup each
    void operator()(std::string_view name, Value value) const {
      append ? record.append(name, std::move(value)) : record.set(name, std::move(value));
    }
  };
  FieldSetter field_setter(Record& r) const;
  void keep_partial(Transfer& t, Job& job);
  // A job ends unfinished (cancelled, or dropped by a graceful stop): its resumable file stays.
  static void keep_for_later(Job& job);
  // A graceful stop drops a job that has not started: its file kept as above, and its record marked
  // unfinished (not done: a resumed run fetches it).
  static void set_aside(Job& job);
  void fail(std::unique_ptr<Job> job, Reason reason, long status, std::string message);
  // The request headers of `record` for a request to `host` (a host key): the node's `headers`, its
  // Authorization and Cookie left out when `credentials` is false, then the host's `hosts` entry's
  // headers (replacing those of the same name). Any thread. False, with `error`, when a rendered value
  // would hold a line break.
  bool render_headers(const Record& record, const std::string& host, bool credentials, std::vector<std::string>& out,
                      std::string& error) const;
  void fail_content_type(std::unique_ptr<Job> job, Host& host, long status, CURL* easy);
  // Fails every job waiting in a host's queue.
  void fail_waiting(Reason reason, const std::string& message);
  void abort_everything();
  void drop_unstarted();
  std::size_t set_aside_downloads();
  long poll_timeout_ms(Clock::time_point now);

  // Hashes std::string and std::string_view alike, for lookups by string_view.
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  FetchOptions opt_;
  HostLimitRules limits_;      // opt_'s per_host, rate and burst, and its host_limits
  bool host_headers_ = false;  // a `hosts` entry has headers
  // A host's limits (set when enqueue() adds it; the node's own for an entry made any other way).
  const HostLimits& limits_of(const Host& host) const { return host.limits ? *host.limits : limits_.defaults(); }
  // The credentials of host `name` whose limits are `limits`: its `hosts` entry's auth, else the
  // node's, else netrc's entry for the name, else netrc's default; null: none.
  const FetchOptions::Auth* auth_for(std::string_view name, const HostLimits& limits) const;
  // The requests `host` may have in flight: its per_host, or with `adaptive` its allowance now.
  int in_flight_limit(const Host& host) const;
  // adaptive: a transfer of `host` (`key`) started at `started` ended in `overload` (what it was:
  // "HTTP 503", "timeout"), or without ("").
  void adapt(const std::string& key, Host& host, std::string_view overload, Clock::time_point started,
             Clock::time_point now);
  // The host's breaker after a failure or an answer, with a notice when it opens or closes.
  void breaker_failed(const std::string& key, Host& host, Clock::time_point now, std::string_view why);
  void breaker_succeeded(const std::string& key, Host& host);
  void notice(std::string message) const {
    if (opt_.notice) opt_.notice(std::move(message));
  }
  std::vector<std::string> keep_fields_;  // header_<name> for each of opt_.keep_headers
  // The fields succeed() sets; empty when two of them share a name.
  std::unordered_set<std::string, StringHash, std::equal_to<>> output_fields_;
  std::string node_id_;
  AsyncOutput* out_ = nullptr;
  CURLM* multi_ = nullptr;
  CURLSH* share_ = nullptr;
  std::string agent_line_;              // "User-Agent: <user_agent>", or empty
  curl_slist* base_headers_ = nullptr;  // request headers of every transfer: agent_line_ unless `headers` sets one
  std::thread thread_;

  // Host keys by host_prefix() of the URLs seen: libcurl parses the first URL of each scheme and
  // authority; the others share its key (a URL libcurl refuses fails at its transfer instead).
  static constexpr std::size_t kMaxHostKeys = 4096;
  static constexpr int kMinIdleConnections = 64;  // libcurl's connection cache, across hosts
  bool host_key(const std::string& url, std::string& key, std::string& error);
  std::mutex host_keys_mutex_;
  std::unordered_map<std::string, std::string, StringHash, std::equal_to<>> host_keys_;

  // derived_key(): the requests sent so far by what the name of a request (its first key) stands
  // for, while the record or URL they come from lasts (its tracked permit): the n-th identical
  // request of a record gets a key of its own. Swept of the ended ones when it doubles.
  struct Sent {
    std::weak_ptr<const Permit> origin;
    std::uint32_t count = 0;
  };
  std::mutex sent_mutex_;
  std::unordered_map<std::string, Sent> sent_;
  std::size_t sent_sweep_at_ = 1024;

  std::mutex incoming_mutex_;
  std::vector<std::unique_ptr<Job>> incoming_;
  std::atomic<bool> cancel_{false};
  std::atomic<bool> winding_down_{false};
  std::atomic<bool> quit_{false};
  std::atomic<bool> sleeping_{false};  // the I/O thread is (about to be) in curl_multi_poll

  // I/O thread only:
  // Every host seen, and those with waiting jobs (admission visits only these: a run over a
  // million hosts must not walk all of them on every loop turn). Idle hosts beyond kMaxIdleHosts
  // are forgotten, oldest first (their robots.txt is fetched again if they come back).
  static constexpr std::size_t kMaxIdleHosts = 10000;
  Hosts hosts_;
  std::vector<Hosts::value_type*> queued_hosts_;
  std::unordered_map<std::string, HostStats, StringHash, std::equal_to<>> host_stats_;  // elements keep their address
  HostStats other_hosts_;                                                               // the hosts past kMaxHostStats
  std::size_t next_sweep_ = kMaxIdleHosts;
  std::multimap<Clock::time_point, Timer> timers_;
  std::unordered_map<CURL*, std::unique_ptr<Transfer>> active_;
  // aws_sigv4's credentials file: looked at again at most once a second (its modification time and
  // size), and read again when it changed; what it last held, for the notice of a bad one.
  void reload_aws_credentials(Clock::time_point now);
  Clock::time_point aws_checked_{};
  std::string aws_file_stamp_;
  std::string aws_file_error_;
  // aws_sigv4's credential_process, when its keys expire: a thread of its own runs the command again
  // before they do (refresh_time()), as often as it must, and leaves the new keys in aws_fresh_ for
  // the I/O thread, which takes them before its next signature (take_fresh_aws_keys()). A failure
  // is a notice, and the command runs again 30 s later while the old keys sign on.
  void refresh_aws_keys(std::string command, std::chrono::system_clock::time_point expires);
  void take_fresh_aws_keys();
  std::thread aws_thread_;
  std::stop_source aws_stop_;
  std::mutex aws_mutex_;
  std::optional<ProcessCredentials> aws_fresh_;  // guarded by aws_mutex_
  std::atomic<bool> aws_has_fresh_{false};
  // aws_sigv4's keys from a container's credentials endpoint (FetchOptions::Aws::endpoint): asked for
  // with a transfer of the loop's own before the first request and again before they expire
  // (refresh_time()); jobs wait while there are none. A failed request is made again after the
  // node's backoff while attempts are left; then the waiting jobs fail (reason auth), and so do
  // those that come until recovery_timeout has passed, unless keys from before still serve.
  struct EndpointKeys {
    bool asking = false;
    int attempts = 0;
    Clock::time_point expires_at = Clock::time_point::min();  // min: none yet; max: they do not expire
    Clock::time_point renew_at = Clock::time_point::min();
    std::optional<std::string> failure;
    Clock::time_point failed_until{};
    // An instance's metadata service is asked in steps: an IMDSv2 session token (kept for its
    // life; none when the service gives none: IMDSv1), the role's name, the role's keys.
    enum class Step { token, role, keys } step = Step::token;
    std::string token, role;
    Clock::time_point token_until = Clock::time_point::min();
    bool v1 = false;
    bool token_new = false;  // the token was asked for in this round
    // A profile's roles (aws.roles): the next one to assume in this round, whether the request in
    // flight assumes one, and the keys it is signed with (those the round got before).
    std::size_t link = 0;
    bool assuming = false;
    FetchOptions::Aws::Keys source;
    // An SSO login: whether the request in flight renews it, the login it renews (its token serves
    // while valid should the renewal fail), and when a failed renewal may be tried again.
    bool renewing_login = false;
    std::optional<SsoToken> login;
    Clock::time_point renew_login_after{};
  };
  EndpointKeys endpoint_keys_;
  // Whether jobs may start: keys are there and have not expired. Asks for them when due.
  bool endpoint_keys_usable(Clock::time_point now);
  void start_endpoint_keys();
  void start_instance_keys();
  void start_assume_role();
  void start_sso_keys();
  void ask_sso_portal(const SsoToken& login);
  void finish_sso_renewal(Transfer& t, CURLcode code);
  // A request for keys (or the instance's token or role): no redirect, `lines` sent; through no
  // proxy unless `proxied` (STS: a public API, reached as the node's requests are).
  void ask_for_keys(const std::string& url, const std::vector<std::string>& lines, std::string_view method = "GET",
                    std::string_view body = {}, bool proxied = false);
  // A request of the loop's own (keys, a token): `lines` sent with the User-Agent, `body` with a
  // method other than GET, the answer capped at kTokenMax; for the caller to mark and add.
  std::unique_ptr<Transfer> own_request(const std::string& url, const std::vector<std::string>& lines,
                                        std::string_view method, std::string_view body);
  void finish_endpoint_keys(Transfer& t, CURLcode code);
  void finish_instance_keys(Transfer& t);  // a response came
  void keys_received(ProcessCredentials keys);
  std::string keys_source() const;  // the endpoint, for messages
  void endpoint_keys_failed(std::string message, bool retryable, std::optional<nanoseconds> wait);
  // `proxies`, in turn. One that failed circuit_breaker.failure_threshold transfers in a row (no
  // connection, timeout, reset) is benched for recovery_timeout; when all are, the one back soonest.
  struct Proxy {
    std::string url;    // as configured, credentials included: for libcurl only
    std::string shown;  // scheme://host:port: for records and messages
    int failures = 0;
    Clock::time_point benched_until{};
  };
  std::vector<Proxy> proxies_;
  // The proxies the environment gives each scheme ("" none) and its no_proxy, read at start.
  struct EnvProxies {
    std::string http, https, no_proxy;
    static EnvProxies read();
  };
  EnvProxies env_proxies_;
  std::size_t next_proxy_ = 0;
  std::vector<std::unique_ptr<Transfer>> idle_;  // finished transfers, handles ready for reuse
  std::shared_ptr<BodyPool> bodies_ = std::make_shared<BodyPool>();
  // download: the files bodies are written to, by the I/O thread as the bytes arrive (set with it).
  std::optional<nodes::PartFiles> files_;
  // download: a job's file, under dir: the rendered `path`, or the hash of the URL the record asked
  // for (not where it was redirected) and an extension from it or from `content_type`.
  std::string download_name(const Job& job, std::string_view content_type) const;
  // The URL field of `record` (the job's) as the record gave it, else the job's URL.
  std::string_view asked_url(const Job& job, const Record& record) const;
  // download: the folder of the job's file (dir, or the folder its rendered `path` names).
  std::string download_folder(const Job& job) const;
  // download: a resumable file an earlier run left for the job (PartFiles::adopt) becomes its
  // partial download; true when the job went to hashing_ (sha256) instead of its host's queue.
  bool adopt_file(std::unique_ptr<Job>& job);
  void hash_adopted();
  std::deque<std::unique_ptr<Job>> hashing_;                 // adopted files being read back for their sha256
  std::unique_ptr<unsigned char[]> hash_buffer_;             // what hash_adopted() reads into
  std::uint64_t continued_files_ = 0, continued_bytes_ = 0;  // files an earlier run began, continued
  // download: the finished body of `t` (its temporary file) renamed to its file; its path, or "" with
  // `error` and the `reason` to fail with.
  std::string place_file(Transfer& t, Job& job, std::string& error, Reason& reason);
  nodes::RunFiles run_files_;  // download: the files of this run, by the URLs they came from
  // download with exists: keep: completes `job` with its file when that is there already (true), or
  // fails it when another URL of this run has that file (true).
  bool keep_existing(std::unique_ptr<Job>& job);
  // cache: lookups and stores run on a thread of their own, so that neither the TBB workers nor the
  // I/O thread wait for the disk. submit() queues a job there instead of in incoming_; a response
  // found goes to the graph from that thread, a miss on to incoming_. succeed() queues each
  // response to be stored (sharing its body with the record), dropping it when kMaxCacheBacklog
  // bytes already wait.
  static constexpr std::size_t kMaxCacheBacklog = 64 << 20;
  static constexpr std::size_t kCacheChunk = 32;
  std::unique_ptr<ResponseCache> cache_;
  std::thread cache_thread_;
  std::mutex cache_mutex_;
  std::condition_variable cache_wake_;
  std::vector<std::unique_ptr<Job>> cache_lookups_;  // guarded by cache_mutex_, as the next four
  std::vector<CachedResponse> cache_stores_;
  std::size_t cache_backlog_ = 0;    // body bytes in cache_stores_
  std::uint64_t cache_skipped_ = 0;  // responses not stored: the backlog was full
  bool cache_quit_ = false;
  // Cache thread only:
  std::uint64_t cache_hits_ = 0, cache_stored_ = 0, cache_revalidated_ = 0;
  std::atomic<std::uint64_t> cache_stale_served_{0};  // stale_if_error answers (I/O thread)
  bool cache_broken_ = false;                         // a lookup or store failed: the cache is left alone from then on
  Clock::time_point next_cache_table_{};
  void cache_run();
  void give_cache_table();
  // A request's key: empty unless the job can be answered from the cache.
  void set_cache_key(Job& job) const;
  // Whether `found` is what the network would give now (its status, type and size pass the node's
  // ok_status, content_types and max_body).
  bool cache_usable(const CachedResponse& found) const;
  void complete_from_cache(std::unique_ptr<Job> job, CachedResponse&& found, CURL* easy);
  // Cache thread, cache.offline: the job's response is not in the cache (`why` says more).
  void fail_not_cached(std::unique_ptr<Job> job, std::string_view why);
  void revalidated(std::unique_ptr<Job> job, Transfer& t, HostStats& stats);
  void queue_store(const Job& job, CURL* easy, const Bytes& body, long status, const char* content_type,
                   const char* final_url, double fetched_at);
  void stop_cache();
  std::mt19937_64 rng_;
  bool aborted_ = false;
  // Transfers at a time that the limit of open files leaves this node (budget_descriptors(); 0: no
  // limit to mind), and the figures behind it for the notice given when it first holds one back.
  static constexpr std::size_t kReservedDescriptors = 16;
  std::size_t descriptor_budget_ = 0;
  std::string budget_why_;
  bool told_budget_ = false;
  void budget_descriptors();
  // Out of descriptors all the same (wait_for_socket()): at most socket_cap_ transfers and as many
  // connections (0: no cap) until socket_cap_until_; shortage_errno_: the latest shortage's errno
  // (EMFILE, ENFILE; EAGAIN: no resolver thread); told_no_socket_: the notice that says so was given.
  // A failed lookup during a shortage is repeated kShortLookups times at most.
  static constexpr std::chrono::seconds kSocketCapFor{1};
  static constexpr int kShortLookups = 8;
  std::size_t socket_cap_ = 0;
  Clock::time_point socket_cap_until_{};
  int shortage_errno_ = 0;
  bool told_no_socket_ = false;
  static constexpr auto kLoneWait = std::chrono::milliseconds(20);
  bool asks_again(Clock::time_point& since, Clock::time_point now, bool& later) const;
  void wait_for_socket(std::unique_ptr<Job> job, Host& host, int socket_errno, bool probe, Clock::time_point now,
                       bool later);
  void cap_sockets(int socket_errno, Clock::time_point now);
  bool sockets_scarce(Clock::time_point now);
  // Sleeps until a socket or a timer needs the loop, or a submission wakes it (curl_multi_poll).
  // poll() fails when it is given more descriptors than the limit of open files allows (EINVAL: the
  // limit was lowered under the run); libcurl 7.88 then returns at once, and leaks its array of
  // descriptors each time. So after a failure the loop looks at its transfers every kPollFailedStep
  // instead, and asks libcurl to poll again after kPollFailedFor; told_poll_failed_: said once.
  static constexpr std::chrono::milliseconds kPollFailedStep{2};
  static constexpr std::chrono::milliseconds kPollFailedFor{250};
  Clock::time_point poll_failed_until_{};
  bool told_poll_failed_ = false;
  void wait_for_work(Clock::time_point now);
  // Results handed to out_ but not flushed yet. Unless a result holds capacity others wait for
  // (out_->urgent()), they are delivered in batches: every kMaxHeld results or kMaxHold, whichever
  // comes first, and at once when no transfer is left to wait for.
  static constexpr std::size_t kMaxHeld = 64;
  static constexpr std::chrono::milliseconds kMaxHold{1};
  std::size_t held_ = 0;
  Clock::time_point first_held_;
  void hold_result() {
    if (held_++ == 0) first_held_ = Clock::now();
  }
};

// The host key of a URL (scheme://host:port, lowercase, default port filled in), read with
// libcurl's own parser. Only http and https URLs with a host are accepted; `error` says why not.
std::optional<std::string> parse_host_key(const std::string& text, std::string& error);

}  // namespace sluice::fetch
