// The fetch node's policies, free of curl so that they can be tested alone: which statuses count
// as success, retry backoff and Retry-After, the per-host token bucket and circuit breaker.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::fetch {

using Clock = std::chrono::steady_clock;
using std::chrono::nanoseconds;

// Status codes that count as success: "2xx", "200-299", "404".
class StatusSet {
 public:
  // Adds an entry; returns false (and leaves the set unchanged) when `entry` is not one of the forms.
  bool add(std::string_view entry);
  bool contains(long status) const;

 private:
  std::vector<std::pair<long, long>> ranges_;
};

// Media types a response may have (`content_types`): "text/html", or "image/*" for every subtype.
// Compared without case and without parameters (charset); a response without a Content-Type passes.
class MediaTypes {
 public:
  // Adds an entry; false (the set unchanged) when `pattern` is not TYPE/SUBTYPE or TYPE/*.
  bool add(std::string_view pattern);
  bool empty() const { return patterns_.empty(); }
  // Whether a response whose Content-Type header is `content_type` (null: none) is wanted.
  bool allows(const char* content_type) const;
  // "text/html, image/*", for messages.
  std::string text() const;

 private:
  std::vector<std::string> patterns_;  // lower case; "image/" for image/*
};

// Why an attempt failed, as used by `retries.on` and in error records (`reason` field).
enum class Reason {
  http_status,
  timeout,
  connect,
  reset,
  dns,
  tls,
  too_large,
  redirects,
  refused,
  circuit_open,
  robots,
  cancelled,
  invalid,
  bad_response,  // not a valid HTTP response: a body that does not decode, no HTTP status line
  content_type,  // a media type outside content_types
  not_cached,    // cache.offline: the cache does not hold the response, and no request is made
  auth,          // oauth2: no access token could be had from the authorization server
  other
};
std::string_view reason_name(Reason reason);

struct RetryPolicy {
  int attempts = 3;  // attempts in total, the first one included
  std::vector<long> on_status = {429, 500, 502, 503, 504};
  bool on_timeout = true, on_connect = true, on_reset = true;
  // A POST or PATCH (not idempotent, RFC 9110 9.2.2) is made again only when the server cannot have
  // acted on it, unless this is set; see may_repeat().
  bool non_idempotent = false;
  // A header (Idempotency-Key) that gives each POST or PATCH a key of its own, the same on all its
  // attempts: a server that honours it acts on the request once, so it is retried like any; "": none.
  std::string idempotency_key;
  nanoseconds base = std::chrono::milliseconds(200);  // first backoff cap
  nanoseconds max = std::chrono::seconds(30);         // cap of every wait, Retry-After included

  bool retries_status(long status) const;
  bool retries_reason(Reason reason) const;
  // Whether a request of `method` that failed so may be made again: any but a POST or PATCH, and
  // those (unless non_idempotent) only when the server cannot have acted on them: a 4xx (it refused
  // them: 429, 408, a 409 on_status names) or a 503 (it did not take them on), a transport failure
  // before any byte of the request was `sent` (a TLS handshake that timed out), a refused connect.
  bool may_repeat(std::string_view method, Reason reason, long status, bool sent) const;
  // Exponential backoff with full jitter before attempt `next_attempt` (2 for the first retry):
  // uniform in [0, min(max, base * 2^(next_attempt-2))].
  nanoseconds backoff(int next_attempt, std::mt19937_64& rng) const;
};

// A new random UUID (version 4, RFC 9562), from the system's cryptographic generator: an
// idempotency key that no other request of this run or another one shares.
std::string random_uuid();
// The UUID that `name` has in the namespace `space` (a UUID's text): version 5, SHA-1, RFC 9562
// 5.5 (Python's uuid.uuid5). The same name, the same UUID: the idempotency key of a request a
// resumed run sends again. Throws std::invalid_argument when `space` is no UUID.
std::string name_uuid(std::string_view space, std::string_view name);

// Parses a Retry-After value: delta seconds, or an HTTP-date (RFC 9110: IMF-fixdate, also the
// obsolete RFC 850 and asctime forms) relative to `now_unix` (seconds since the epoch).
std::optional<nanoseconds> parse_retry_after(std::string_view value, std::int64_t now_unix);

// "10/s", "600/m", "2.5/s", "1/h" -> requests per second; nullopt when malformed or not positive.
std::optional<double> parse_rate(std::string_view text);

// The admission limits of one host: requests in flight, and its token bucket (rate 0: none).
struct HostLimits {
  int per_host = 8;
  double rate = 0;
  int burst = 1;
  int entry = -1;  // the `hosts` entry these come from (its headers), -1: the node's own
};

// Whether an IP address (text, as libcurl reports it) is one a crawler of the public web has no
// business connecting to: loopback, private (RFC 1918, fc00::/7), link-local (169.254/16, where
// cloud metadata services answer; fe80::/10), shared (100.64/10), unspecified, multicast, reserved;
// also an IPv4-mapped IPv6 address of these. Text that is no IP address counts as private.
bool is_private_address(std::string_view ip);

// `hosts` of fetch: limits for host names other than the node's own. A pattern is a host name
// ("api.example.com", an IP address, "[::1]"), matched exactly, or "*.example.com", matched by every
// name below example.com (not by example.com itself). An exact pattern wins over wildcards, and a
// longer wildcard over a shorter one. Names are compared without case.
class HostLimitRules {
 public:
  explicit HostLimitRules(HostLimits defaults = {}) : defaults_(defaults) {}
  // Adds a pattern (assumed valid: see host_pattern_error); a pattern given twice keeps the first.
  void add(std::string_view pattern, HostLimits limits);
  // The limits of a host name; the defaults when no pattern matches. The reference stays valid for
  // the rules' life.
  const HostLimits& match(std::string_view host) const;
  const HostLimits& defaults() const { return defaults_; }
  // The largest per_host of the defaults and every pattern.
  int max_per_host() const;

 private:
  HostLimits defaults_;
  std::vector<std::pair<std::string, HostLimits>> exact_;     // lower-case names
  std::vector<std::pair<std::string, HostLimits>> suffixes_;  // ".example.com", longest first
};

// Why `pattern` is not a host pattern of `hosts` ("" when it is one).
std::string host_pattern_error(std::string_view pattern);

// The host name of a host key ("https://example.com:443" -> "example.com", "[::1]" stays bracketed).
std::string_view host_of_key(std::string_view key);

// Tokens refill at `rate` per second up to `burst`; a request takes one.
class TokenBucket {
 public:
  TokenBucket() = default;
  TokenBucket(double rate, double burst, Clock::time_point now)
      : rate_(rate), burst_(burst), tokens_(burst), last_(now) {}

  bool limited() const { return rate_ > 0; }
  bool try_take(Clock::time_point now);
  // When the next token is available (now, when one is).
  Clock::time_point next_token(Clock::time_point now);
  // Refilled to its burst by `now` (a fresh bucket would allow no more than this one).
  bool full(Clock::time_point now) const;

 private:
  void refill(Clock::time_point now);
  double rate_ = 0, burst_ = 0, tokens_ = 0;
  Clock::time_point last_{};
};

// A per-host circuit breaker: closed -> (failure_threshold consecutive failures) -> open ->
// (recovery_timeout) -> half-open: one probe; its success closes, its failure re-opens.
class CircuitBreaker {
 public:
  enum class State { closed, open, half_open };
  enum class Admission { allow, probe, reject };

  CircuitBreaker() = default;
  CircuitBreaker(int failure_threshold, nanoseconds recovery_timeout)
      : threshold_(failure_threshold), recovery_(recovery_timeout) {}

  // May a request start now? `probe` marks the one request let through while half-open.
  Admission admit(Clock::time_point now);
  void on_success();
  void on_failure(Clock::time_point now);
  // A probe that ended without telling anything about the host (cancelled): let another one go.
  void on_probe_abandoned();

  State state() const { return state_; }
  int consecutive_failures() const { return consecutive_; }
  // When an open breaker lets a probe through.
  Clock::time_point retry_at() const { return opened_at_ + recovery_; }

 private:
  int threshold_ = 0;  // 0 disables the breaker
  nanoseconds recovery_{0};
  State state_ = State::closed;
  int consecutive_ = 0;
  bool probe_in_flight_ = false;
  Clock::time_point opened_at_{};
};

}  // namespace sluice::fetch
