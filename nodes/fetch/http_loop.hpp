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
#include "policy.hpp"
#include "robots.hpp"
#include "sluice/node.hpp"
#include "sluice/template.hpp"

namespace sluice::fetch {

struct FetchOptions {
  std::string url_field = "url";
  std::string method = "GET";
  std::vector<std::pair<std::string, FieldTemplate>> headers;
  std::optional<FieldTemplate> body;
  std::string user_agent = "sluice/0.1";
  nanoseconds timeout = std::chrono::seconds(30);
  nanoseconds connect_timeout = std::chrono::seconds(10);
  std::uint64_t max_body = 10 << 20;
  int max_redirects = 5;
  bool compressed = true;
  bool http2 = true;
  bool cookies = false;
  std::string cookie_file;  // a Netscape cookie file loaded at start (implies cookies); "": none
  std::string ca_file;      // PEM certificates of the authorities to trust instead of the system's; "": the system's
  // A client certificate (PEM) and its private key (PEM; "": in the same file) for the servers that
  // ask for one (mutual TLS); "": none.
  std::string client_cert, client_key;
  std::optional<std::string> proxy;  // unset: the environment's; "": none; else the proxy URL
  std::vector<std::string> proxies;  // several: each transfer takes the next healthy one (proxy unset)
  int per_host = 8;
  // per_host is a ceiling each host's allowance moves under: halved when the host signals overload
  // (429, 502, 503, 504, a timeout, a refused or reset connection), one more per round of successes
  bool adaptive = false;
  // Tells whoever runs the pipeline what happened to a host (a breaker opened); see NodeContext.
  std::function<void(std::string)> notice;
  // Gives the run's report a table when the loop stops: the requests and outcomes by host.
  std::function<void(std::string, std::vector<Record>)> table;
  // Counts the body bytes as they arrive (the I/O thread is its only writer); may be null.
  std::atomic<std::uint64_t>* received = nullptr;
  double rate = 0;  // requests per second per host; 0 = unlimited
  int burst = 1;
  // `hosts`: other limits for some hosts, by pattern (an exact name or *.domain), in config order,
  // and each entry's request headers (by HostLimits::entry), sent to its hosts only.
  std::vector<std::pair<std::string, HostLimits>> host_limits;
  std::vector<std::vector<std::pair<std::string, FieldTemplate>>> host_headers;
  RetryPolicy retry;
  int breaker_threshold = 5;
  nanoseconds breaker_recovery = std::chrono::seconds(30);
  StatusSet ok_status;
  MediaTypes content_types;               // empty: any
  std::vector<std::string> keep_headers;  // lower-case names
  std::string body_field = "body";
  // download: each successful body goes to a file of its own under `dir` as it arrives (`path`, a
  // template, names it; default: the URL's hash and an extension), not into the record.
  struct Download {
    std::string dir;
    std::optional<FieldTemplate> path;
    bool keep = false;    // exists: keep: a file already there is kept, and not fetched when its name is known first
    bool sha256 = false;  // the record gets the SHA-256 of the file's bytes, hashed as they are written
    bool served = false;  // `path` uses {server_filename}: the name the server gives, known when the file is whole
  };
  std::optional<Download> download;
  // cache: successful responses are kept in a SQLite file (ResponseCache), and a request that one
  // answered before (same method, URL, body and headers) takes it from there unless it is older
  // than max_age (unset: never too old).
  struct Cache {
    std::string path;
    std::optional<nanoseconds> max_age;
    bool offline = false;   // answers come only from the cache: a request it does not hold fails (not_cached)
    StatusSet keep_status;  // failed statuses kept too (a dead link's 404), replayed as the same failure
    // A stale response answers its request when the host fails (no answer, a 5xx or 429, an open
    // breaker) instead of the failure (RFC 5861's stale-if-error).
    bool stale_if_error = false;
  };
  std::optional<Cache> cache;
  bool refuse_private = false;                          // private_addresses: refuse: no connection to a private address
  bool robots = true;                                   // fetch /robots.txt per host first and obey it
  nanoseconds robots_max_age = std::chrono::hours(24);  // then a host's robots.txt is fetched again
  // A longer Crawl-delay fails the host's URLs (reason robots) instead of holding the run for it.
  nanoseconds max_crawl_delay = std::chrono::seconds(60);
  // An API's rate-limit headers are obeyed: when a response says no request is left in the window,
  // the host's next request waits for the reset, and a 403 or 429 that says so is retried then.
  bool rate_limit_headers = false;
  // oauth2: an access token from an authorization server (RFC 6749's client credentials grant, or
  // its refresh token grant), sent as "Authorization: Bearer <token>" with each request (not to a
  // redirect's other origin). Asked for before the first request, again before it expires, and when
  // a request gets 401 with it.
  struct OAuth2 {
    std::string token_url;                 // "" with jwt: its key's token_uri (a Google key's)
    std::string client_id, client_secret;  // no secret: a public client (the refresh token grant only)
    std::string scope;                                        // "": none asked for
    std::vector<std::pair<std::string, std::string>> params;  // more fields of the token request (audience)
    bool basic = true;  // client_auth: basic (HTTP Basic authentication), else post (the id and secret in the form)
    // client_auth: private_key_jwt (RFC 7523 2.2): the client proves itself with a JWT signed with
    // jwt's key (iss and sub its client_id) instead of a secret, and `jwt` is no grant of its own.
    bool private_key_jwt = false;
    // The refresh token grant (RFC 6749 6) with this refresh token, or the one in the file (read when
    // the loop is made; a new one the server issues is written back to it). Both "": client credentials.
    std::string refresh_token, refresh_token_file;
    // The JWT bearer grant (RFC 7523 2.1): an assertion signed with the key of key_file (RS256), made
    // for each request; issuer and key_id default to a Google service account key's.
    struct Jwt {
      std::string key_file;
      std::string issuer, subject, audience, key_id;  // audience "": token_url
      std::string certificate;  // the key's certificate (PEM), named in the header by its thumbprints
    };
    std::optional<Jwt> jwt;
    // The client proves itself with an assertion another issuer gave it, read from this file again
    // for each token request (RFC 7521 4.2's client_assertion, with client_id: a federated token,
    // such as a Kubernetes service account's or a CI job's OIDC token, that the issuer rotates).
    std::string client_assertion_file;
  };
  std::optional<OAuth2> oauth2;
  // HTTP authentication with a user and password (auth), for the requests that do not cross to
  // another origin; robots.txt goes without.
  struct Auth {
    enum class Scheme { basic, digest, ntlm };  // RFC 7617, RFC 7616, MS-NLMP (NTLMv2)
    std::string user, password;                 // ntlm: user may be DOMAIN\user
    Scheme scheme = Scheme::basic;
  };
  std::optional<Auth> auth;
  std::vector<std::optional<Auth>> host_auth;     // by `hosts` entry (HostLimits::entry): its own auth
  // netrc: Basic credentials by lower-case host name, "" for the file's `default`, for the hosts
  // that neither auth gives any (read_netrc()).
  std::vector<std::pair<std::string, Auth>> netrc;
  // How the proxy's credentials (its URL's user:password) are proved: proxy_auth (basic: libcurl's
  // own default, sent with each request).
  Auth::Scheme proxy_auth = Auth::Scheme::basic;
  // AWS Signature Version 4 (aws_sigv4), for the requests that do not cross to another origin:
  // fetch puts the path and query in AWS's encoding and signs each request (aws_authorization()),
  // with x-amz-content-sha256 and the session token's header.
  struct Aws {
    std::string region, service, key_id, secret, session_token;
    // The shared credentials file and profile the keys came from ("" when the pipeline or the
    // environment gave them): read again when it changes (a tool that renews temporary credentials
    // writes them there).
    std::string credentials_file, profile;
    // credential_process: the command the keys came from, run again by a thread of the node's (not
    // the I/O thread) before they expire; empty when they did not come from one.
    std::string process;
    std::optional<std::chrono::system_clock::time_point> expires;  // the process's keys' Expiration
  };
  std::optional<Aws> aws;
  // The run serves a site in this process (settings.serve): a request to it holds both ends of its
  // connection, so the limit of open files allows half as many transfers.
  bool serves_site = false;
};

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

// oauth2's jwt key_file: a Google service account's JSON key (its private key, client_email,
// private_key_id and token_uri) or a PEM file with an RSA private key.
struct JwtKey {
  std::string pem;
  std::string client_email, key_id, token_uri;  // "" for a PEM file
  // jwt.certificate's thumbprints, base64url (RFC 7515 4.1.7-8): x5t its SHA-1, x5t_s256 its SHA-256.
  std::string x5t, x5t_s256;
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
  struct Timer {
    std::unique_ptr<Job> job;  // a retry; null: wake `host` for admission
    std::string host;
    bool robots = false;  // with `host`: fetch its robots.txt again
    bool token = false;   // oauth2: ask for an access token again (a failed request's backoff is over)
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
  void finish_token(Transfer& t, CURLcode code);
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
  // retried (when attempts are left) whatever retries.on_status says.
  void retry_or_fail(std::unique_ptr<Job> job, Reason reason, long status, std::string message, nanoseconds wait,
                     bool rate_limited = false);
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

// A request header's name: an HTTP token (RFC 9110: letters, digits and !#$%&'*+-.^_`|~).
bool is_header_name(std::string_view name);

// The cookies of a Netscape cookie file (what browser extensions export as cookies.txt, and
// `curl -c` writes): one per line, 7 fields separated by tabs (domain, include subdomains, path,
// secure, expiry, name, value; a "#HttpOnly_" prefix marks an HttpOnly cookie). Blank lines and
// other '#' lines are skipped. Returns nullopt and sets `error` when the file cannot be read, a line
// is not a cookie (naming it), or every cookie in it has expired.
std::optional<std::vector<std::string>> read_cookie_file(const std::string& path, std::string& error);
// A netrc file (as curl, ftp and git read ~/.netrc): `machine NAME login L password P` entries and
// a `default` one (name ""), in the file's order, names in lower case; `account` and `macdef` are
// read over; "quoted tokens" may hold spaces (\" and \\ escaped). nullopt and `error` (with the
// line) when it cannot be read, or a token is out of place or lacks its value, or an entry lacks a
// login or password.
std::optional<std::vector<std::pair<std::string, FetchOptions::Auth>>> read_netrc(const std::string& path,
                                                                                  std::string& error);
// aws_sigv4's shared credentials file (~/.aws/credentials, as the AWS CLI and SDKs read it):
// `aws_access_key_id`, `aws_secret_access_key` and `aws_session_token` of profile `profile` ([name]
// sections of `name = value` lines; '#' and ';' lines are comments, indented lines a nested
// setting's) set in `aws`; a profile without keys whose `credential_process` names a command sets
// `aws.process` instead, for the caller to run. `config`: the file is the AWS config file
// (~/.aws/config), whose sections are [profile NAME] and [default]. false and `error` (with the
// line) when the file cannot be read or is no such file, has no such profile (naming those it has),
// or the profile lacks the key id or secret (saying so when it names an SSO or a role instead).
bool read_aws_credentials(const std::string& path, const std::string& profile, FetchOptions::Aws& aws,
                          std::string& error, bool config = false);
// oauth2's client_assertion_file: the assertion it holds (one token, surrounding white space left
// out), or nullopt and `error` when it cannot be read or holds none.
std::optional<std::string> read_client_assertion(const std::string& path, std::string& error);
// oauth2's refresh_token_file: the refresh token it holds (its one line), or nullopt and `error`
// when it cannot be read, holds no token, or it and its folder cannot be written (a new refresh
// token goes there).
std::optional<std::string> read_refresh_token(const std::string& path, std::string& error);
// client_cert and client_key (the same file when "") checked: a PEM certificate, and the private
// key that goes with it, without a passphrase; false and `error` if not.
bool check_client_certificate(const std::string& cert, const std::string& key, std::string& error);
// proxy_auth's check of a proxy URL: "" when it names a user and password for an HTTP(S) proxy (with
// `ntlm`, ASCII ones), else what is wrong, the URL shown without its credentials.
std::string check_proxy_credentials(const std::string& url, bool ntlm);
// `url` in AWS Signature Version 4's encoding, as it is sent and signed: each segment of its path
// percent-decoded and encoded again with only A-Z a-z 0-9 - . _ ~ left (as the AWS SDKs send a path;
// "." and ".." segments resolved), its query in the canonical form (each name and value so encoded,
// sorted by name, then value; a name without '=' gets one), its fragment left out.
std::string aws_canonical_url(std::string_view url);
// The value of the Host header a request to `url` sends: its host, and its port unless the scheme's
// own (libcurl's rule); without user and password.
std::string aws_host(std::string_view url);
// AWS Signature Version 4 (canonical request, string to sign, signing key): the value of the
// Authorization header of a request with `method` to `url` (aws_canonical_url()'s, as sent), signing
// the `headers` ("Name: value" lines, Host and X-Amz-Date among them; lines without a value are
// not signed) and the body's SHA-256 in hex, `payload_hash`, at `amz_date` (YYYYMMDDTHHMMSSZ, UTC).
// The canonical URI is the path as sent for S3 (a service named s3...), and for every other
// service that path encoded once more, without empty and dot segments, as AWS's SDKs sign it
// (libcurl 7.88 signs every path as sent, so a Lambda ARN's or Bedrock model id's ':' would not
// verify).
std::string aws_authorization(const FetchOptions::Aws& aws, std::string_view method, std::string_view url,
                              const std::vector<std::string>& headers, std::string_view payload_hash,
                              std::string_view amz_date);
// The lower-case hex SHA-256 of `bytes` (x-amz-content-sha256).
std::string sha256_hex(std::string_view bytes);
// oauth2's jwt key_file read, or nullopt and `error` when it cannot be read or holds no RSA private
// key.
std::optional<JwtKey> read_jwt_key(const std::string& path, std::string& error);
// oauth2's jwt certificate: the thumbprints of the PEM certificate in `path` set in `key` (read from
// `key_file`); false and `error` when it cannot be read, holds no certificate, or is not the key's.
bool read_jwt_certificate(JwtKey& key, const std::string& key_file, const std::string& path, std::string& error);
// An RFC 7523 assertion for `o` at `now` (Unix seconds), unique by `nonce`: the JWT
// {header}.{claims}.{RS256 signature}, base64url; "" and `error` if the key cannot sign.
std::string jwt_assertion(const JwtKey& key, const FetchOptions::OAuth2& o, std::int64_t now, std::uint64_t nonce,
                          std::string& error);
// Replaces the refresh token file's content with `token` (a new file in its folder, then renamed
// over it, so a crash leaves the old or the new token, whole). False and `error` when it cannot.
bool write_refresh_token(const std::string& path, std::string_view token, std::string& error);
// A request header's value: no CR, LF or NUL, which would end the header line and start another
// (a field of a scraped record rendered into a header must not add headers of its own).
bool header_value_ok(std::string_view value);

}  // namespace sluice::fetch
