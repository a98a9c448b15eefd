#include "policy.hpp"

#include "../text.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <ctime>

namespace sluice::fetch {

bool StatusSet::add(std::string_view entry) {
  auto number = [](std::string_view s) -> std::optional<long> {
    long v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || v < 100 || v > 599) return std::nullopt;
    return v;
  };
  if (entry.size() == 3 && entry[0] >= '1' && entry[0] <= '5' && entry.substr(1) == "xx") {
    long base = (entry[0] - '0') * 100;
    ranges_.emplace_back(base, base + 99);
    return true;
  }
  if (auto dash = entry.find('-'); dash != std::string_view::npos) {
    auto lo = number(entry.substr(0, dash));
    auto hi = number(entry.substr(dash + 1));
    if (!lo || !hi || *lo > *hi) return false;
    ranges_.emplace_back(*lo, *hi);
    return true;
  }
  auto single = number(entry);
  if (!single) return false;
  ranges_.emplace_back(*single, *single);
  return true;
}

bool StatusSet::contains(long status) const {
  return std::any_of(ranges_.begin(), ranges_.end(), [&](auto r) { return status >= r.first && status <= r.second; });
}

std::string_view reason_name(Reason reason) {
  switch (reason) {
    case Reason::http_status:
      return "http_status";
    case Reason::timeout:
      return "timeout";
    case Reason::connect:
      return "connect";
    case Reason::reset:
      return "reset";
    case Reason::dns:
      return "dns";
    case Reason::tls:
      return "tls";
    case Reason::too_large:
      return "too_large";
    case Reason::redirects:
      return "redirects";
    case Reason::refused:
      return "refused";
    case Reason::circuit_open:
      return "circuit_open";
    case Reason::robots:
      return "robots";
    case Reason::not_cached:
      return "not_cached";
    case Reason::auth:
      return "auth";
    case Reason::cancelled:
      return "cancelled";
    case Reason::invalid:
      return "invalid";
    case Reason::bad_response:
      return "bad_response";
    case Reason::content_type:
      return "content_type";
    case Reason::other:
      return "other";
  }
  return "other";
}

bool RetryPolicy::retries_status(long status) const {
  return std::find(on_status.begin(), on_status.end(), status) != on_status.end();
}

bool RetryPolicy::may_repeat(std::string_view method, Reason reason, long status, bool sent) const {
  if (non_idempotent || !idempotency_key.empty() || (method != "POST" && method != "PATCH")) return true;
  if (reason == Reason::http_status) return status < 500 || status == 503;  // refused, or not taken on
  // No connection to the server (a proxy's CONNECT may have been sent, and counts as sent).
  if (reason == Reason::connect || reason == Reason::dns) return true;
  return !sent;
}

namespace {

// 16 bytes as a UUID of `version` (its variant bits 10, RFC 9562), in the usual 8-4-4-4-12 form.
std::string uuid_text(unsigned char* b, int version) {
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | (version << 4));
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
  return fmt::format(
      "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}", b[0],
      b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

}  // namespace

std::string random_uuid() {
  unsigned char b[16];
  if (RAND_bytes(b, sizeof b) != 1) throw std::runtime_error("random_uuid: no random bytes from OpenSSL");
  return uuid_text(b, 4);
}

std::string name_uuid(std::string_view space, std::string_view name) {
  std::string input;  // the namespace's 16 bytes, then the name
  int high = -1;
  for (char c : space) {
    const int digit = nodes::hex_digit(c);
    if (digit < 0) continue;  // the dashes
    if (high < 0) {
      high = digit;
    } else {
      input.push_back(static_cast<char>(high << 4 | digit));
      high = -1;
    }
  }
  if (input.size() != 16) throw std::invalid_argument(fmt::format("name_uuid: '{}' is not a UUID", space));
  input.append(name);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (EVP_Digest(input.data(), input.size(), digest, &size, EVP_sha1(), nullptr) != 1 || size < 16)
    throw std::runtime_error("name_uuid: OpenSSL cannot hash with SHA-1");
  return uuid_text(digest, 5);
}

bool RetryPolicy::retries_reason(Reason reason) const {
  switch (reason) {
    case Reason::timeout:
      return on_timeout;
    case Reason::connect:
    case Reason::dns:
      return on_connect;
    case Reason::reset:
      return on_reset;
    default:
      return false;
  }
}

nanoseconds RetryPolicy::backoff(int next_attempt, std::mt19937_64& rng) const {
  int exponent = std::clamp(next_attempt - 2, 0, 40);
  double cap =
      std::min(static_cast<double>(max.count()), static_cast<double>(base.count()) * std::ldexp(1.0, exponent));
  std::uniform_real_distribution<double> jitter(0.0, cap);
  return nanoseconds(static_cast<std::int64_t>(jitter(rng)));
}

namespace {

int month_index(std::string_view m) {
  static constexpr std::string_view kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  for (int i = 0; i < 12; ++i) {
    if (kMonths[i] == m) return i;
  }
  return -1;
}

std::optional<std::int64_t> parse_http_date(std::string_view v) {
  std::tm tm{};
  char month[4] = {};
  char zone[4] = {};
  std::string s(v);
  int day, year, hour, minute, second;
  // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
  if (std::sscanf(s.c_str(), "%*3s, %2d %3s %4d %2d:%2d:%2d %3s", &day, month, &year, &hour, &minute, &second, zone) ==
      7) {
  } else if (std::sscanf(s.c_str(), "%*[A-Za-z], %2d-%3s-%2d %2d:%2d:%2d %3s", &day, month, &year, &hour, &minute,
                         &second, zone) == 7) {
    // RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
    year += year < 70 ? 2000 : 1900;
  } else if (std::sscanf(s.c_str(), "%*3s %3s %d %2d:%2d:%2d %4d", month, &day, &hour, &minute, &second, &year) == 6) {
    // asctime: Sun Nov  6 08:49:37 1994
    std::snprintf(zone, sizeof zone, "GMT");
  } else {
    return std::nullopt;
  }
  int mon = month_index(month);
  if (mon < 0 || std::string_view(zone) != "GMT") return std::nullopt;
  tm.tm_year = year - 1900;
  tm.tm_mon = mon;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  return static_cast<std::int64_t>(timegm(&tm));
}

}  // namespace

std::optional<nanoseconds> parse_retry_after(std::string_view value, std::int64_t now_unix) {
  // Longer waits are cut to this, which nanoseconds hold (292 years would overflow them); the
  // caller caps the wait by retries.max anyway.
  constexpr std::int64_t kLongest = 1'000'000'000;  // seconds: 31 years
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\r')) value.remove_suffix(1);
  if (value.empty()) return std::nullopt;
  if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    std::int64_t seconds = 0;
    auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
    if (ec == std::errc::result_out_of_range)
      seconds = kLongest;
    else if (ec != std::errc())
      return std::nullopt;
    return std::chrono::seconds(std::min(seconds, kLongest));
  }
  auto when = parse_http_date(value);
  if (!when) return std::nullopt;
  return std::chrono::seconds(std::clamp<std::int64_t>(*when - now_unix, 0, kLongest));
}

std::optional<double> parse_rate(std::string_view text) {
  auto slash = text.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  double count = 0;
  auto n = text.substr(0, slash);
  auto [p, ec] = std::from_chars(n.data(), n.data() + n.size(), count);
  if (ec != std::errc() || p != n.data() + n.size() || !(count > 0)) return std::nullopt;
  auto unit = text.substr(slash + 1);
  if (unit == "s") return count;
  if (unit == "m") return count / 60;
  if (unit == "h") return count / 3600;
  return std::nullopt;
}

void TokenBucket::refill(Clock::time_point now) {
  if (now <= last_) return;
  tokens_ = std::min(burst_, tokens_ + std::chrono::duration<double>(now - last_).count() * rate_);
  last_ = now;
}

bool TokenBucket::try_take(Clock::time_point now) {
  if (!limited()) return true;
  refill(now);
  if (tokens_ < 1) return false;
  tokens_ -= 1;
  return true;
}

Clock::time_point TokenBucket::next_token(Clock::time_point now) {
  if (!limited()) return now;
  refill(now);
  if (tokens_ >= 1) return now;
  return now + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>((1 - tokens_) / rate_));
}

bool TokenBucket::full(Clock::time_point now) const {
  if (!limited()) return true;
  const double since = now > last_ ? std::chrono::duration<double>(now - last_).count() : 0.0;
  return tokens_ + since * rate_ >= burst_;
}

CircuitBreaker::Admission CircuitBreaker::admit(Clock::time_point now) {
  if (threshold_ <= 0) return Admission::allow;
  if (state_ == State::closed) return Admission::allow;
  if (state_ == State::open) {
    if (now < retry_at()) return Admission::reject;
    state_ = State::half_open;
    probe_in_flight_ = false;
  }
  if (probe_in_flight_) return Admission::reject;
  probe_in_flight_ = true;
  return Admission::probe;
}

void CircuitBreaker::on_success() {
  consecutive_ = 0;
  state_ = State::closed;
  probe_in_flight_ = false;
}

void CircuitBreaker::on_failure(Clock::time_point now) {
  ++consecutive_;
  if (threshold_ <= 0) return;
  if (state_ == State::half_open || (state_ == State::closed && consecutive_ >= threshold_)) {
    state_ = State::open;
    opened_at_ = now;
    probe_in_flight_ = false;
  }
}

void CircuitBreaker::on_probe_abandoned() {
  probe_in_flight_ = false;
}

using nodes::to_lower;

void HostLimitRules::add(std::string_view pattern, HostLimits limits) {
  const bool wildcard = pattern.substr(0, 2) == "*.";
  auto& list = wildcard ? suffixes_ : exact_;
  std::string key = to_lower(wildcard ? pattern.substr(1) : pattern);  // "*.a.com" -> ".a.com"
  if (std::any_of(list.begin(), list.end(), [&](const auto& e) { return e.first == key; })) return;
  list.emplace_back(std::move(key), limits);
  std::stable_sort(suffixes_.begin(), suffixes_.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
}

const HostLimits& HostLimitRules::match(std::string_view host) const {
  if (exact_.empty() && suffixes_.empty()) return defaults_;
  const std::string name = to_lower(host);
  for (const auto& [pattern, limits] : exact_) {
    if (pattern == name) return limits;
  }
  for (const auto& [suffix, limits] : suffixes_) {
    if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      return limits;
  }
  return defaults_;
}

int HostLimitRules::max_per_host() const {
  int most = defaults_.per_host;
  for (const auto* list : {&exact_, &suffixes_}) {
    for (const auto& entry : *list) most = std::max(most, entry.second.per_host);
  }
  return most;
}

std::string host_pattern_error(std::string_view pattern) {
  if (pattern.empty()) return "an empty host name";
  if (pattern.find("://") != std::string_view::npos || pattern.find('/') != std::string_view::npos)
    return "a host name, without scheme or path (api.example.com, *.example.com)";
  if (nodes::beyond_ascii(pattern))
    return "a host name beyond ASCII is written in punycode, as URLs are sent (xn--bcher-kva.example)";
  if (pattern.front() == '[') {
    const bool ok =
        pattern.size() > 2 && pattern.back() == ']' && std::all_of(pattern.begin() + 1, pattern.end() - 1, [](char c) {
          return std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.';
        });
    return ok ? "" : "an IPv6 address is written in brackets: [2001:db8::1]";
  }
  std::string_view name = pattern;
  if (name.substr(0, 2) == "*.") name.remove_prefix(2);
  if (name.find(':') != std::string_view::npos) return "a host name without a port (the limits hold for every port)";
  if (name.find('*') != std::string_view::npos) return "'*' stands only as the whole first label: *.example.com";
  std::size_t start = 0;
  while (true) {
    const std::size_t end = std::min(name.find('.', start), name.size());
    const std::string_view label = name.substr(start, end - start);
    if (label.empty()) return "an empty label (two dots, or a dot at an end)";
    if (label.size() > 63) return "a label longer than 63 characters";
    for (char c : label) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_')
        return std::string("'") + c + "' is not part of a host name (letters, digits, '-', '.')";
    }
    if (end == name.size()) return "";
    start = end + 1;
  }
}

std::string_view host_of_key(std::string_view key) {
  const auto begin = key.find("://");
  const std::size_t from = begin == std::string_view::npos ? 0 : begin + 3;
  const auto colon = key.rfind(':');
  const std::size_t to = colon == std::string_view::npos || colon < from || key.back() == ']' ? key.size() : colon;
  return key.substr(from, to - from);
}

namespace {

bool is_token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) ||
           std::string_view("!#$&^_.+-").find(c) != std::string_view::npos;
  });
}

}  // namespace

bool MediaTypes::add(std::string_view pattern) {
  const auto slash = pattern.find('/');
  if (slash == std::string_view::npos) return false;
  const std::string_view type = pattern.substr(0, slash), subtype = pattern.substr(slash + 1);
  if (!is_token(type) || (subtype != "*" && !is_token(subtype))) return false;
  std::string entry = to_lower(subtype == "*" ? pattern.substr(0, slash + 1) : pattern);
  patterns_.push_back(std::move(entry));
  return true;
}

bool MediaTypes::allows(const char* content_type) const {
  if (patterns_.empty() || !content_type) return true;
  std::string_view media(content_type);
  media = media.substr(0, media.find(';'));
  while (!media.empty() && (media.front() == ' ' || media.front() == '\t')) media.remove_prefix(1);
  while (!media.empty() && (media.back() == ' ' || media.back() == '\t')) media.remove_suffix(1);
  if (media.empty()) return true;
  const std::string type = to_lower(media);
  return std::any_of(patterns_.begin(), patterns_.end(), [&](const std::string& p) {
    return p.back() == '/' ? type.starts_with(p) && type.size() > p.size() : type == p;
  });
}

std::string MediaTypes::text() const {
  std::string out;
  for (const auto& p : patterns_) {
    if (!out.empty()) out += ", ";
    out += p;
    if (p.back() == '/') out += '*';
  }
  return out;
}

namespace {

bool private_v4(const unsigned char* a) {
  const auto in = [&](unsigned first, unsigned second_from, unsigned second_to) {
    return a[0] == first && a[1] >= second_from && a[1] <= second_to;
  };
  return a[0] == 0 || a[0] == 10 || a[0] == 127 || a[0] >= 224 || in(100, 64, 127) || in(169, 254, 254) ||
         in(172, 16, 31) || in(192, 168, 168) || in(198, 18, 19) || (a[0] == 192 && a[1] == 0 && a[2] == 0);
}

}  // namespace

bool is_private_address(std::string_view ip) {
  const std::string text(ip);
  unsigned char a[16] = {};
  if (::inet_pton(AF_INET, text.c_str(), a) == 1) return private_v4(a);
  if (::inet_pton(AF_INET6, text.c_str(), a) != 1) return true;
  static const unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::equal(a, a + 12, kMapped)) return private_v4(a + 12);
  if (std::all_of(a, a + 15, [](unsigned char c) { return c == 0; }) && a[15] <= 1) return true;  // :: and ::1
  return (a[0] & 0xfe) == 0xfc || (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) || a[0] == 0xff;
}

}  // namespace sluice::fetch
