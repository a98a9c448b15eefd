#include "http_loop.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>

#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../text.hpp"
#include "aws_sigv4.hpp"
#include "credentials.hpp"
#include "sluice/state.hpp"
#include "transfer.hpp"

namespace sluice::fetch {

namespace {

// The most of a robots.txt that is read; RFC 9309 asks crawlers to parse at least 500 KiB.
constexpr std::size_t kRobotsMax = 512 * 1024;

// EMFILE or ENFILE: this process, or the system, has no file descriptor left.
bool is_out_of_descriptors(int error) {
  return error == EMFILE || error == ENFILE;
}

// Whether a response whose headers came is a success of a media type outside `types` (content_types;
// empty: any).
bool unwanted_type(CURL* easy, const MediaTypes& types, const StatusSet& ok_status) {
  if (types.empty()) return false;
  long status = 0;
  char* type = nullptr;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_getinfo(easy, CURLINFO_CONTENT_TYPE, &type);
  return ok_status.contains(status) && !types.allows(type);
}

// download: writes a successful body's bytes to its transfer's temporary file (opened at the first
// bytes); false, with the transfer's write_error, when they cannot be written.
bool write_to_file(HttpLoop::Transfer& t, const char* data, std::size_t n) {
  if (t.fd < 0 && !t.validator.empty() && t.job && !t.job->resume_key.empty()) {  // a file a later run can continue
    t.fd = t.files->open_resumable(t.folder, t.job->resume_key, t.job->asked_url, t.validator, t.temp);
    t.resumable = t.fd >= 0;
  }
  if (t.fd < 0) {
    std::string name = t.job && !t.job->file.empty() ? t.job->file.substr(t.job->file.rfind('/') + 1) : "download";
    t.fd = t.files->open(t.folder, name, t.temp, t.write_error);
    if (t.fd < 0 && is_out_of_descriptors(errno)) t.socket_errno = errno;  // no_file_descriptor()
    if (t.fd < 0) return false;
  }
  if (const int e = nodes::PartFiles::write_all(t.fd, data, n); e != 0) {
    t.write_error = fmt::format("cannot write: {}: '{}'", std::strerror(e), t.temp);
    return false;
  }
  t.written += n;
  if (t.digest) EVP_DigestUpdate(t.digest, data, n);
  return true;
}

// rate_limit_headers: how long the last response's rate-limit headers say to wait before the host's
// next request: until the window's reset when no request is left in it. X-RateLimit-Remaining and
// -Reset (GitHub's and many others': the reset in Unix seconds, or in seconds from now when below
// 10^9), or RateLimit-Remaining and -Reset (the IETF draft's: seconds). nullopt when requests are
// left, or the headers do not say when they renew.
std::optional<nanoseconds> rate_limit_wait(CURL* easy, double unix_time) {
  static constexpr std::pair<const char*, const char*> kHeaders[] = {
      {"X-RateLimit-Remaining", "X-RateLimit-Reset"},
      {"RateLimit-Remaining", "RateLimit-Reset"},
  };
  for (const auto& [remaining_name, reset_name] : kHeaders) {
    const auto remaining = response_header(easy, remaining_name);
    if (!remaining) continue;
    if (nodes::trim(*remaining) != "0") return std::nullopt;
    const auto reset = response_header(easy, reset_name);
    if (!reset) return std::nullopt;
    const std::string text(nodes::trim(*reset));
    char* end = nullptr;
    double seconds = std::strtod(text.c_str(), &end);
    if (text.empty() || *end != '\0' || !std::isfinite(seconds) || seconds < 0) return std::nullopt;
    if (seconds > 1e9) seconds -= unix_time;  // a moment, not a span
    seconds = std::clamp(seconds, 0.0, 1e7);  // over 100 days is no reset to wait for
    return std::chrono::duration_cast<nanoseconds>(std::chrono::duration<double>(seconds));
  }
  return std::nullopt;
}

// Whether the last response gave Content-Length more than once with different values, or as a list
// of different numbers: libcurl 7.88 reads the body by the last value, so the body may be cut short,
// and RFC 9112 (6.3) makes such framing an unrecoverable error. `lengths` gets the values as sent.
// One header lookup per response; only a repeated or listed field is read further. With
// Transfer-Encoding the lengths are not used (RFC 9112, 6.1: the chunks frame the body).
bool conflicting_lengths(CURL* easy, std::string& lengths) {
  curl_header* h = nullptr;
  if (curl_easy_header(easy, "Content-Length", 0, CURLH_HEADER, -1, &h) != CURLHE_OK) return false;
  if (h->amount == 1 && !std::strchr(h->value, ',')) return false;
  if (response_header(easy, "Transfer-Encoding")) return false;
  lengths = response_header(easy, "Content-Length").value_or("");
  std::optional<std::string_view> first;
  for (std::string_view rest = lengths; !rest.empty();) {
    const std::size_t comma = std::min(rest.find(','), rest.size());
    std::string_view piece = rest.substr(0, comma);
    rest.remove_prefix(std::min(comma + 1, rest.size()));
    while (!piece.empty() && (piece.front() == ' ' || piece.front() == '\t')) piece.remove_prefix(1);
    while (!piece.empty() && (piece.back() == ' ' || piece.back() == '\t')) piece.remove_suffix(1);
    if (piece.empty()) continue;  // an empty list element (RFC 9110, 5.6.1)
    while (piece.size() > 1 && piece.front() == '0') piece.remove_prefix(1);
    if (!first) {
      first = piece;
    } else if (piece != *first) {
      return true;
    }
  }
  return false;
}

// download: the version of the file a successful response sends, for a later request to continue
// it (Range, If-Range): its strong ETag, else its Last-Modified date; "" when its bytes cannot be
// continued (not a GET, encoded on the wire, whose ranges count other bytes, Accept-Ranges: none,
// or no version named).
std::string file_version(HttpLoop::Transfer& t) {
  if (t.job->method != "GET") return "";
  if (auto coding = response_header(t.easy, "Content-Encoding"); coding && !nodes::iequals(*coding, "identity"))
    return "";
  if (auto ranges = response_header(t.easy, "Accept-Ranges"); ranges && nodes::iequals(*ranges, "none")) return "";
  if (auto etag = response_header(t.easy, "ETag"); etag && !etag->starts_with("W/")) return std::move(*etag);
  return response_header(t.easy, "Last-Modified").value_or("");
}

// download: whether a 206 answer to a resumed transfer continues its file where it ends (its
// Content-Range starts at `offset`).
bool continues_at(CURL* easy, std::uint64_t offset) {
  const auto range = response_header(easy, "Content-Range");
  std::string_view v = range ? std::string_view(*range) : std::string_view();
  if (!v.starts_with("bytes ")) return false;
  v.remove_prefix(6);
  std::uint64_t start = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), start);
  return ec == std::errc() && end != v.data() + v.size() && *end == '-' && start == offset;
}

// download: the server sent the whole file to a resumed transfer (it changed since, or ignores
// ranges): the file starts again from nothing.
bool restart_file(HttpLoop::Transfer& t) {
  if (::ftruncate(t.fd, 0) != 0 || ::lseek(t.fd, 0, SEEK_SET) != 0) {
    t.write_error = fmt::format("cannot write: {}: '{}'", std::strerror(errno), t.temp);
    return false;
  }
  t.written = 0;
  t.resumed_from = 0;
  t.earlier_run = false;
  t.validator.clear();
  if (t.digest) EVP_DigestInit_ex(t.digest, EVP_sha256(), nullptr);
  return true;
}

std::size_t on_body(char* data, std::size_t size, std::size_t count, void* user) {
  auto* t = static_cast<HttpLoop::Transfer*>(user);
  std::size_t n = size * count;
  if (t->received) t->received->store(t->received->load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  if (!t->sized) {
    if (t->types && unwanted_type(t->easy, *t->types, *t->ok_status)) {
      t->wrong_type = true;
      return 0;  // aborts the transfer: a video or an archive is not downloaded to be refused
    }
    t->sized = true;
    if (t->files) {
      long status = 0;
      curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
      if (t->resumed_from > 0 && status == 206) {
        if (!continues_at(t->easy, t->resumed_from)) {
          t->bad_range = true;
          return 0;
        }
      } else if (!t->ok_status->contains(status)) {
        t->files = nullptr;  // an error page: kept in memory, and dropped (a file to resume stays as it is)
      } else {
        if (t->resumed_from > 0 && !restart_file(*t)) return 0;
        t->validator = file_version(*t);
        if (t->resumable) nodes::PartFiles::set_version(t->temp, t->job->asked_url, t->validator);
      }
    }
    if (!t->files) {
      // A reused buffer, sized once from Content-Length instead of grown (a compressed body may still grow).
      t->body = t->bodies->take();
      curl_off_t length = -1;
      if (curl_easy_getinfo(t->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length) == CURLE_OK && length > 0)
        t->body.reserve(std::min(static_cast<std::uint64_t>(length), t->max_body));
    }
  }
  if (t->files) {
    if (t->written + n > t->max_body) {
      t->too_large = true;
      return 0;
    }
    return write_to_file(*t, data, n) ? n : 0;  // 0 aborts the transfer (CURLE_WRITE_ERROR)
  }
  if (t->body.size() + n > t->max_body) {
    t->too_large = true;
    return 0;  // aborts the transfer: decoded bytes are capped here, whatever the headers said
  }
  t->body.append(data, n);
  return n;
}

// private_addresses: refuse. Called once a connection is made (or reused), before the request is
// sent: the address is the one connected to, after DNS, so a name that resolves to an internal
// address (or is made to, between two lookups) is caught as well as a literal one.
int on_prereq(void* user, char* primary_ip, char*, int, int) {
  auto* t = static_cast<HttpLoop::Transfer*>(user);
  if (!primary_ip || !is_private_address(primary_ip)) return CURL_PREREQFUNC_OK;
  t->refused_ip = primary_ip ? primary_ip : "";
  return CURL_PREREQFUNC_ABORT;
}

// libcurl's own socket() call, keeping its errno: libcurl 7.88 reports a socket it could not open as
// "Couldn't connect to server", the same as a host that refused, with no errno (CURLINFO_OS_ERRNO
// is 0). Out of descriptors (EMFILE, ENFILE) is this process's trouble, not the host's.
curl_socket_t on_open_socket(void* user, curlsocktype, curl_sockaddr* address) {
  curl_socket_t s = ::socket(address->family, address->socktype, address->protocol);
  if (s == CURL_SOCKET_BAD) static_cast<HttpLoop::Transfer*>(user)->socket_errno = errno;
  return s;
}

bool is_lookup_failure(CURLcode code) {
  return code == CURLE_COULDNT_RESOLVE_HOST || code == CURLE_COULDNT_RESOLVE_PROXY;
}

// download: the response came, but its file could not be opened for want of a descriptor.
bool no_file_descriptor(const HttpLoop::Transfer& t, CURLcode code) {
  return code == CURLE_WRITE_ERROR && !t.write_error.empty() && is_out_of_descriptors(t.socket_errno);
}

// libcurl 7.88 looks a name up on a thread of its own, which needs two descriptors (a socketpair) to
// start and more inside getaddrinfo() (/etc/hosts, a socket to the name server). Without them the
// lookup fails as "getaddrinfo() thread failed to start" or "Could not resolve host", with no errno,
// and the host would be blamed (its breaker opened) for this process's limit. So after a failed
// lookup the system is asked at once for as many descriptors as a lookup takes (two socketpairs:
// one socketpair alone was there when the failed lookup's own had just been closed, under ASan):
// EMFILE or ENFILE if they cannot be had; EAGAIN if they can but the resolver's thread did not
// start (no thread or memory free then), which is never the host's doing either; 0 for a lookup
// that failed on its own.
int lookup_errno(CURLcode code, const char* error) {
  if (!is_lookup_failure(code)) return 0;
  int pairs[2][2];
  int made = 0, failure = 0;
  for (; made < 2; ++made) {
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pairs[made]) != 0) {
      failure = errno;
      break;
    }
  }
  for (int i = 0; i < made; ++i) {
    ::close(pairs[i][0]);
    ::close(pairs[i][1]);
  }
  if (made < 2) return is_out_of_descriptors(failure) ? failure : 0;
  return std::strcmp(error, "getaddrinfo() thread failed to start") == 0 ? EAGAIN : 0;
}

// A URL as it is sent. Spaces and bytes beyond ASCII are not allowed in a URL (RFC 3986), but URL
// lists and APIs have them ("/a b.html", "/café", "?q=new york"): they are percent-encoded in the
// path, query and fragment, spaces as %20 (nodes::spaces_escaped()), as browsers send them, and a
// host name beyond ASCII becomes punycode ("café.example" is sent as "xn--caf-dma.example", one host
// with its punycode spelling). Control characters are left, so that the URL is refused as invalid;
// those around it and spaces are stripped (nodes::url_stripped()). Relative to `base` when one is
// given (a redirect's Location; "" when it cannot be resolved). Most URLs need nothing: one scan, no
// parse.
std::string request_url(std::string_view given, const char* base = nullptr) {
  const std::string_view stripped = nodes::url_stripped(given);
  if (!base && !nodes::needs_escapes(stripped)) return std::string(stripped);
  const std::string text = nodes::spaces_escaped(stripped);
  nodes::Utf8Ctype utf8;
  CURLU* u = curl_url();
  std::string out = base ? std::string() : text;
  char* full = nullptr;
  if ((!base || curl_url_set(u, CURLUPART_URL, base, 0) == CURLUE_OK) &&
      curl_url_set(u, CURLUPART_URL, text.c_str(), CURLU_URLENCODE) == CURLUE_OK &&
      (curl_url_get(u, CURLUPART_URL, &full, CURLU_PUNYCODE) == CURLUE_OK ||
       curl_url_get(u, CURLUPART_URL, &full, 0) == CURLUE_OK) &&
      full) {
    out = full;
    nodes::uppercase_escapes(out);
  }
  curl_free(full);
  curl_url_cleanup(u);
  return out;
}

// Where a redirect goes: libcurl's resolved Location (`resolved`), unless the Location has spaces,
// which libcurl sends as '+' in a query: such a one is resolved here against the URL it came from,
// spaces as %20. libcurl takes the last of several Location headers, as this does.
std::string redirect_url(CURL* easy, const char* resolved, const std::string& from) {
  curl_header* h = nullptr;
  if (curl_easy_header(easy, "Location", 0, CURLH_HEADER, -1, &h) == CURLHE_OK && h->amount > 1)
    curl_easy_header(easy, "Location", h->amount - 1, CURLH_HEADER, -1, &h);
  if (!h || nodes::url_stripped(h->value).find(' ') == std::string_view::npos) return request_url(resolved);
  std::string url = request_url(h->value, from.c_str());
  return url.empty() ? request_url(resolved) : url;
}

}  // namespace

std::optional<std::string> response_header(CURL* easy, const char* name) {
  curl_header* h = nullptr;
  if (curl_easy_header(easy, name, 0, CURLH_HEADER, -1, &h) != CURLHE_OK) return std::nullopt;
  std::string value = h->value;
  for (std::size_t i = 1, n = h->amount; i < n; ++i) {
    if (curl_easy_header(easy, name, i, CURLH_HEADER, -1, &h) == CURLHE_OK) value.append(", ").append(h->value);
  }
  return value;
}

std::string attempts_text(int n) {
  return n == 1 ? "1 attempt" : fmt::format("{} attempts", n);
}

bool out_of_sockets(const HttpLoop::Transfer& t, CURLcode code) {
  const bool no_descriptor = is_out_of_descriptors(t.socket_errno);
  if (code == CURLE_COULDNT_CONNECT) return no_descriptor;
  return is_lookup_failure(code) && (no_descriptor || t.socket_errno == EAGAIN);
}

std::string out_of_descriptors(int socket_errno) {
  if (socket_errno == ENFILE) return "the system's table of open files is full (ENFILE)";
  if (socket_errno == EAGAIN)
    return "libcurl's resolver could not start a thread to look a name up (threads or memory)";
  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  return fmt::format("this process has reached its limit of {} open files (ulimit -n)", limit.rlim_cur);
}

std::string private_message(std::string_view url, std::string_view ip) {
  return fmt::format("refused: '{}' is at {}, a private address (private_addresses: refuse)", url, ip);
}

std::optional<std::string> parse_host_key(const std::string& text, std::string& error) {
  CURLU* u = curl_url();
  CURLUcode rc = curl_url_set(u, CURLUPART_URL, text.c_str(), 0);
  if (rc != CURLUE_OK) {
    error = fmt::format("invalid URL '{}': {}", text, curl_url_strerror(rc));
    curl_url_cleanup(u);
    return std::nullopt;
  }
  char *scheme = nullptr, *host = nullptr, *port = nullptr;
  curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
  curl_url_get(u, CURLUPART_HOST, &host, 0);
  curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
  std::optional<std::string> key;
  if (!scheme || (!nodes::iequals(scheme, "http") && !nodes::iequals(scheme, "https"))) {
    error = fmt::format("refused '{}': only http and https URLs are allowed", text);
  } else if (!host || !*host) {
    error = fmt::format("invalid URL '{}': no host", text);
  } else {
    key.emplace();
    key->reserve(std::strlen(scheme) + std::strlen(host) + 12);
    for (const char* c = scheme; *c; ++c) *key += static_cast<char>(std::tolower(static_cast<unsigned char>(*c)));
    *key += "://";
    for (const char* c = host; *c; ++c) *key += static_cast<char>(std::tolower(static_cast<unsigned char>(*c)));
    *key += ':';
    *key += port ? port : "";
  }
  curl_free(scheme);
  curl_free(host);
  curl_free(port);
  curl_url_cleanup(u);
  return key;
}

namespace {

// The URL's path and query as libcurl normalizes them (dot segments removed), for robots.txt rules.
std::string robots_path(const std::string& text) {
  CURLU* u = curl_url();
  std::string out = "/";
  if (curl_url_set(u, CURLUPART_URL, text.c_str(), 0) == CURLUE_OK) {
    char *path = nullptr, *query = nullptr;
    curl_url_get(u, CURLUPART_PATH, &path, 0);
    curl_url_get(u, CURLUPART_QUERY, &query, 0);
    if (path && *path) out = path;
    if (query) out.append("?").append(query);
    curl_free(path);
    curl_free(query);
  }
  curl_url_cleanup(u);
  return out;
}

// The part of a URL that decides its host key: everything before the first '/' after "://"
// (scheme, authority, and a query or fragment that has no '/'). Empty when there is no "://".
std::string_view host_prefix(std::string_view url) {
  auto scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return {};
  return url.substr(0, url.find('/', scheme_end + 3));
}

// The line of `headers` ("Name: value" lines) named `lower_name` (any case), or end().
template <class Headers>
auto find_header(Headers& headers, std::string_view lower_name) {
  return std::find_if(headers.begin(), headers.end(), [lower_name](const std::string& h) {
    return nodes::iequals(std::string_view(h).substr(0, h.find(':')), lower_name);
  });
}

bool has_header(const std::vector<std::string>& headers, std::string_view lower_name) {
  return find_header(headers, lower_name) != headers.end();
}

bool is_host_failure(Reason r) {
  return r == Reason::timeout || r == Reason::connect || r == Reason::reset || r == Reason::dns || r == Reason::tls;
}

// libcurl's bit for an auth or proxy_auth scheme.
unsigned long curl_auth(FetchOptions::Auth::Scheme scheme) {
  using Scheme = FetchOptions::Auth::Scheme;
  return scheme == Scheme::digest ? CURLAUTH_DIGEST : scheme == Scheme::ntlm ? CURLAUTH_NTLM : CURLAUTH_BASIC;
}

// The URL libcurl fetched, normalized; `fallback` if it has none.
std::string effective_url(CURL* easy, const std::string& fallback) {
  char* url = nullptr;
  curl_easy_getinfo(easy, CURLINFO_EFFECTIVE_URL, &url);
  return url ? std::string(url) : fallback;
}

// What an error response says of itself, for its record's message: ": " and the start of its body
// (at most 300 bytes, on one line, control characters as spaces) when the body is text an API writes
// its errors in (text/plain, JSON, XML: {"message":"Validation Failed",...}); "" for an HTML page,
// which says little in a line, and for bytes.
std::string error_excerpt(CURL* easy, std::string_view body) {
  char* type = nullptr;
  curl_easy_getinfo(easy, CURLINFO_CONTENT_TYPE, &type);
  if (!type) return "";
  const std::string media = nodes::to_lower(nodes::trim(std::string_view(type).substr(0, std::strcspn(type, ";"))));
  const bool text = media == "text/plain" || media == "application/json" || media.ends_with("+json") ||
                    media == "application/xml" || media == "text/xml" || media.ends_with("+xml");
  if (!text) return "";
  std::string line;
  for (char c : body.substr(0, 4096)) {
    const bool space = static_cast<unsigned char>(c) < 0x20 || c == 0x7f || c == ' ';
    if (!space) {
      line += c;
    } else if (!line.empty() && line.back() != ' ') {
      line += ' ';
    }
  }
  line = std::string(nodes::trim(line));
  return line.empty() ? "" : ": " + nodes::sample_of(line, 300);
}

bool is_redirect(long status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

}  // namespace

Reason classify(CURLcode code, bool too_large) {
  if (too_large || code == CURLE_FILESIZE_EXCEEDED) return Reason::too_large;
  switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
      return Reason::timeout;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      return Reason::dns;
    case CURLE_COULDNT_CONNECT:
      return Reason::connect;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return Reason::reset;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
      return Reason::tls;
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_UNSUPPORTED_PROTOCOL:  // only http(s) URLs reach libcurl: this is an HTTP/0.9 reply
      return Reason::bad_response;
    case CURLE_URL_MALFORMAT:
      return Reason::invalid;
    default:
      return Reason::other;
  }
}

std::string BodyPool::take() {
  std::lock_guard lock(mutex_);
  if (free_.empty()) return {};
  std::string buffer = std::move(free_.back());
  free_.pop_back();
  bytes_ -= buffer.capacity();
  return buffer;
}

void BodyPool::give(std::string&& buffer) {
  const std::size_t capacity = buffer.capacity();
  if (capacity < 256 || capacity > kMaxCapacity) return;  // small ones are not worth it; big ones are freed
  std::string kept = std::move(buffer);
  kept.clear();
  std::lock_guard lock(mutex_);
  if (free_.size() >= kMaxBuffers || bytes_ + capacity > kMaxBytes)
    return;  // freed after the lock, by kept's destructor
  bytes_ += capacity;
  free_.push_back(std::move(kept));
}

Bytes BodyPool::share(std::string&& body) {
  // One allocation holds the body and the pool reference; the Bytes alias the body inside it.
  struct Shared {
    std::string body;
    std::shared_ptr<BodyPool> pool;
    ~Shared() { pool->give(std::move(body)); }
  };
  auto shared = std::make_shared<Shared>();
  shared->body = std::move(body);
  shared->pool = shared_from_this();
  return Bytes(std::shared_ptr<const std::string>(shared, &shared->body));
}

// What libcurl 7.88 would take from the environment for each transfer (create_conn_helper_init_proxy
// and detect_proxy in lib/url.c): no_proxy or NO_PROXY; http_proxy (lower case only: a CGI server
// sets HTTP_PROXY from a request's Proxy header), https_proxy or HTTPS_PROXY; else all_proxy or
// ALL_PROXY. A variable counts as curl_getenv() takes it: set and not empty.
HttpLoop::EnvProxies HttpLoop::EnvProxies::read() {
  auto first = [](std::initializer_list<const char*> names) {
    for (const char* name : names) {
      const char* value = std::getenv(name);
      if (value && *value) return std::string(value);
    }
    return std::string();
  };
  const std::string all = first({"all_proxy", "ALL_PROXY"});
  EnvProxies env;
  env.no_proxy = first({"no_proxy", "NO_PROXY"});
  env.http = first({"http_proxy"});
  if (env.http.empty()) env.http = all;
  env.https = first({"https_proxy", "HTTPS_PROXY"});
  if (env.https.empty()) env.https = all;
  return env;
}

HttpLoop::HttpLoop(FetchOptions options, std::string node_id)
    : opt_(std::move(options)),
      limits_(HostLimits{opt_.per_host, opt_.rate, opt_.burst}),
      node_id_(std::move(node_id)),
      rng_(std::random_device{}()) {
  for (const auto& [pattern, limits] : opt_.host_limits) limits_.add(pattern, limits);
  host_headers_ =
      std::any_of(opt_.host_headers.begin(), opt_.host_headers.end(), [](const auto& h) { return !h.empty(); });
  for (const std::string& name : opt_.keep_headers) {
    std::string field = "header_" + name;
    std::replace(field.begin(), field.end(), '-', '_');
    keep_fields_.push_back(std::move(field));
  }
  constexpr std::string_view kFixedFields[] = {"final_url", "status",     "content_type", "time_dns",  "time_connect",
                                               "time_ttfb", "time_total", "attempts",     "fetched_at"};
  output_fields_.insert(std::begin(kFixedFields), std::end(kFixedFields));
  output_fields_.insert(opt_.body_field);
  output_fields_.insert(keep_fields_.begin(), keep_fields_.end());
  if (!opt_.proxies.empty()) output_fields_.insert("proxy");
  if (opt_.download) output_fields_.insert({"file", "file_size"});
  if (opt_.download && opt_.download->sha256) output_fields_.insert("sha256");
  if (opt_.cache) output_fields_.insert("cached");
  // A body_field or kept header that repeats a name: set() replaces, so appending is not safe.
  if (output_fields_.size() != std::size(kFixedFields) + 1 + keep_fields_.size() + (opt_.proxies.empty() ? 0 : 1) +
                                   (opt_.download ? 2 : 0) + (opt_.download && opt_.download->sha256 ? 1 : 0) +
                                   (opt_.cache ? 1 : 0))
    output_fields_.clear();
  for (const auto& url : opt_.proxies) proxies_.push_back(Proxy{url, proxy_shown(url)});
  env_proxies_ = EnvProxies::read();
  // The User-Agent goes out as a plain request header: CURLOPT_USERAGENT costs libcurl a formatted
  // copy per request. A User-Agent among the configured headers replaces it.
  // (robots.txt requests still send `user_agent`: their rules are matched against it).
  if (!opt_.user_agent.empty()) agent_line_ = "User-Agent: " + opt_.user_agent;
  bool custom_agent = std::any_of(opt_.headers.begin(), opt_.headers.end(),
                                  [](const auto& h) { return nodes::iequals(h.first, "user-agent"); });
  if (!custom_agent && !agent_line_.empty()) {
    base_headers_ = curl_slist_append(nullptr, agent_line_.c_str());
    if (!base_headers_) throw std::bad_alloc();
  }
  if (opt_.oauth2) prepare_token_request();
}

void HttpLoop::start(AsyncOutput& out) {
  out_ = &out;
  multi_ = curl_multi_init();
  // Our own admission enforces per_host; curl's cap is only a safety net (curl counts its own
  // queueing time against the transfer timeout).
  const int per_host = limits_.max_per_host();
  curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS, static_cast<long>(per_host));
  // libcurl's default keeps 4 idle connections per easy handle currently added: when few transfers
  // run for a moment (slots held downstream), it closes the others and reconnects later (seen: 89
  // connections instead of 16 for 20,000 requests to one host). Keep what per_host allows.
  curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS, static_cast<long>(std::max(kMinIdleConnections, 4 * per_host)));
  budget_descriptors();
  // Used by the I/O thread only (and by load_cookies() before it starts): no locks.
  share_ = curl_share_init();
  if (!share_) throw std::bad_alloc();
  curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  if (opt_.cookies || !opt_.cookie_file.empty()) curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_COOKIE);
  if (!opt_.cookie_file.empty()) load_cookies();
  if (opt_.download) {
    files_.emplace();
    std::string error;
    if (!files_->make_dirs(opt_.download->dir, error)) throw NodeError("download: " + error);
    if (const auto stale = files_->stale_removed(); stale > 0) {
      notice(fmt::format("download: removed {} temporary file{} (.part) that killed runs left in '{}'", stale,
                         stale == 1 ? "" : "s", opt_.download->dir));
    }
  }
  if (opt_.cache) {
    // With stale_if_error every old response may still answer a failed host, and offline answers
    // with responses however old: none is swept.
    cache_ = std::make_unique<ResponseCache>(opt_.cache->path, opt_.cache->max_age,
                                             !opt_.cache->stale_if_error && !opt_.cache->offline);
    cache_thread_ = std::thread([this] { cache_run(); });
  }
  if (token_.shared) {  // woken by the loops that share the token from now on (multi_ and cache_ are set)
    std::lock_guard lock(token_.shared->mutex);
    token_.shared->loops.push_back(this);
  }
  if (opt_.aws && !opt_.aws->process.empty() && opt_.aws->expires) {
    aws_thread_ = std::thread(
        [this, command = opt_.aws->process, expires = *opt_.aws->expires] { refresh_aws_keys(command, expires); });
  }
  thread_ = std::thread([this] { run(); });
}

// Main thread, before the I/O thread starts: the cookie file's cookies into the shared jar, through a
// handle of its own (read again: the file may have changed since the pipeline was checked).
void HttpLoop::load_cookies() {
  std::string error;
  const auto lines = read_cookie_file(opt_.cookie_file, error);
  if (!lines) throw NodeError("cookie_file: " + error);
  CURL* e = curl_easy_init();
  curl_easy_setopt(e, CURLOPT_SHARE, share_);
  for (const auto& line : *lines) curl_easy_setopt(e, CURLOPT_COOKIELIST, line.c_str());
  curl_easy_cleanup(e);
}

void HttpLoop::submit(Record&& record) {
  auto job = std::make_unique<Job>();
  const Value* url = record.get(opt_.url_field);
  std::string error;
  if (!url || !url->as_string()) {
    job->setup_error = url ? fmt::format("field '{}' is a {}, not a URL string", opt_.url_field, url->type_name())
                           : fmt::format("record has no '{}' field", opt_.url_field);
  } else {
    job->url = request_url(*url->as_string());
    if (!host_key(job->url, job->host, error)) {
      job->setup_reason = error.starts_with("refused") ? Reason::refused : Reason::invalid;
      job->setup_error = std::move(error);
    }
    // Results and errors name the record by the URL it was fetched from, whatever field held it.
    if (record.meta.origin_url.empty()) record.meta.origin_url = job->url;
  }
  job->method = opt_.method;
  if (!render_headers(record, job->host, true, job->headers, error) && job->setup_error.empty()) {
    job->setup_reason = Reason::invalid;
    job->setup_error = std::move(error);
  }
  if (job->setup_error.empty()) add_idempotency_key(*job, record);
  if (opt_.body) job->body = opt_.body->render(record);
  if (opt_.download && opt_.download->path && job->setup_error.empty()) {
    // {server_filename} is known only when the file is whole (place_file()): its folder and the
    // rest of the path are checked now, with a stand-in name.
    if (opt_.download->served) record.set("server_filename", Value("_"));
    job->file = nodes::checked_relative(opt_.download->path->render(record), error);
    if (opt_.download->served) record.erase("server_filename");
    if (job->file.empty()) {
      job->setup_reason = Reason::invalid;
      job->setup_error = "download: " + error;
    }
  }
  if (opt_.download && job->method == "GET" && job->setup_error.empty()) {
    job->asked_url = std::string(asked_url(*job, record));
    job->resume_key = fmt::format("{:016x}", fnv1a64(job->asked_url));
  }
  job->record = std::move(record);
  if (cache_ && job->setup_error.empty()) {
    set_cache_key(*job);
    std::lock_guard lock(cache_mutex_);
    cache_lookups_.push_back(std::move(job));
    return;
  }
  std::lock_guard lock(incoming_mutex_);
  incoming_.push_back(std::move(job));
}

// retries.idempotency_key: a POST or PATCH gets the header, with the value `headers` gave it, else
// the record's idempotency_key field (an earlier run's key), else one of its own (derived_key());
// the record keeps it in that field, so that the key goes with it to a store of failures and back.
void HttpLoop::add_idempotency_key(Job& job, Record& record) {
  const std::string& name = opt_.retry.idempotency_key;
  if (name.empty() || (job.method != "POST" && job.method != "PATCH")) return;
  std::string key;
  if (auto given = find_header(job.headers, nodes::to_lower(name)); given != job.headers.end()) {
    key = nodes::trim(std::string_view(*given).substr(name.size() + 1));
    if (key.empty()) job.headers.erase(given);  // rendered empty: as if not given
  }
  if (key.empty()) {
    const Value* field = record.get("idempotency_key");  // a string, or a number an API gave
    key = field && (field->as_string() || field->as_int()) ? field->to_text() : std::string();
    if (key.empty() || !header_value_ok(key)) key = derived_key(job, record);
    job.headers.push_back(fmt::format("{}: {}", name, key));
  }
  record.set("idempotency_key", Value(std::move(key)));
}

// A request's own idempotency key. In a resumable run (settings.state), for a record whose work
// the state tracks (a source's record, a frontier's URL), the UUID (version 5) in the run's id of
// what the request is: this node, that record or URL, the method, URL and body (rendered without
// the key); the n-th identical request of the same record gets the UUID of n in the first one's.
// A resumed run redoes the record whole, so it sends each request again with the key the killed
// run sent it with, and a server that acted on it answers with that first result. Else a random
// one: a run without state is never resumed, and source.sqlite's rows are found by a query again.
std::string HttpLoop::derived_key(const Job& job, const Record& record) {
  const auto origin = opt_.state ? opt_.state->origin(record.permits) : std::nullopt;
  if (!origin) return random_uuid();
  const std::string body = opt_.body ? opt_.body->render(record) : std::string();
  const std::string tag = fmt::format("{}", origin->tag);
  std::string name;
  for (const std::string* piece :
       std::initializer_list<const std::string*>{&node_id_, origin->node, &tag, &job.method, &job.url, &body}) {
    fmt::format_to(std::back_inserter(name), "{}:{}\n", piece->size(), *piece);
  }
  std::string key = name_uuid(opt_.state->run_id(), name);
  std::uint32_t n = 0;
  {
    std::lock_guard lock(sent_mutex_);
    if (sent_.size() >= sent_sweep_at_) {
      std::erase_if(sent_, [](const auto& entry) { return entry.second.origin.expired(); });
      sent_sweep_at_ = std::max<std::size_t>(1024, sent_.size() * 2);
    }
    Sent& sent = sent_[key];
    if (sent.origin.lock() != *origin->permit) sent = Sent{*origin->permit, 0};
    n = sent.count++;
  }
  return n == 0 ? key : name_uuid(key, fmt::format("{}", n));
}

bool HttpLoop::host_key(const std::string& url, std::string& key, std::string& error) {
  const std::string_view prefix = host_prefix(url);
  if (!prefix.empty()) {
    std::lock_guard lock(host_keys_mutex_);
    if (auto it = host_keys_.find(prefix); it != host_keys_.end()) {
      key = it->second;
      return true;
    }
  }
  auto parsed = parse_host_key(url, error);
  if (!parsed) return false;
  key = *parsed;
  if (!prefix.empty()) {
    std::lock_guard lock(host_keys_mutex_);
    if (host_keys_.size() >= kMaxHostKeys) host_keys_.clear();
    host_keys_.emplace(std::string(prefix), std::move(*parsed));
  }
  return true;
}

void HttpLoop::wake() {
  // A busy loop takes the jobs on its next turn; only a sleeping one needs the (syscall) wakeup, and
  // only once per sleep: the first caller to see the flag clears it and wakes the loop.
  if (sleeping_.exchange(false)) curl_multi_wakeup(multi_);
  if (cache_) cache_wake_.notify_one();
}

void HttpLoop::cancel() {
  cancel_.store(true);
  if (multi_) curl_multi_wakeup(multi_);
  if (cache_) cache_wake_.notify_one();
}

void HttpLoop::wind_down() {
  winding_down_.store(true);
  if (multi_) curl_multi_wakeup(multi_);
}

void HttpLoop::stop() {
  quit_.store(true);
  if (multi_) curl_multi_wakeup(multi_);
  if (thread_.joinable()) thread_.join();
  aws_stop_.request_stop();  // a command under way is killed
  if (aws_thread_.joinable()) aws_thread_.join();
  stop_cache();
  if (continued_files_ > 0) {
    notice(fmt::format(
        "download: continued {} file{} that an earlier run left unfinished ({:.1f} MiB of {} not fetched again)",
        continued_files_, continued_files_ == 1 ? "" : "s", continued_bytes_ / 1048576.0,
        continued_files_ == 1 ? "it" : "them"));
  }
  if (opt_.table && !host_stats_.empty()) opt_.table("hosts", host_rows());  // other_hosts_ only past it
}

std::uint64_t HttpLoop::HostStats::failed() const {
  std::uint64_t n = 0;
  for (auto count : failed_by) n += count;
  return n;
}

HttpLoop::HostStats& HttpLoop::stats_of(const std::string& key) {
  if (auto it = host_stats_.find(key); it != host_stats_.end()) return it->second;
  if (host_stats_.size() >= kMaxHostStats) return other_hosts_;
  return host_stats_[key];
}

// A transfer that ended (a request was sent): `status` 0 when no response came.
void HttpLoop::count_transfer(HostStats& stats, CURL* easy, long status, std::size_t body_bytes) {
  ++stats.requests;
  ++stats.by_class[status <= 0 ? 0 : status < 600 ? status / 100 : 6];
  stats.bytes += body_bytes;
  curl_off_t total = 0;
  curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME_T, &total);
  const double seconds = static_cast<double>(total) / 1e6;
  stats.seconds += seconds;
  stats.max_seconds = std::max(stats.max_seconds, seconds);
}

// The table of hosts: the hosts with the most failed records first, then the busiest; the shared
// row of the hosts past kMaxHostStats last.
std::vector<Record> HttpLoop::host_rows(std::size_t limit) const {
  static const std::string kOtherHosts = fmt::format("(the hosts after the first {})", kMaxHostStats);
  std::vector<std::pair<std::string_view, const HostStats*>> hosts;
  hosts.reserve(host_stats_.size() + 1);
  for (const auto& [key, stats] : host_stats_) hosts.emplace_back(key, &stats);
  const auto first = [](const auto& a, const auto& b) {
    const auto fa = a.second->failed(), fb = b.second->failed();
    if (fa != fb) return fa > fb;
    if (a.second->requests != b.second->requests) return a.second->requests > b.second->requests;
    return a.first < b.first;
  };
  if (hosts.size() > limit) {
    std::partial_sort(hosts.begin(), hosts.begin() + static_cast<std::ptrdiff_t>(limit), hosts.end(), first);
    hosts.resize(limit);
  } else {
    std::sort(hosts.begin(), hosts.end(), first);
  }
  if ((other_hosts_.requests > 0 || other_hosts_.failed() > 0) && hosts.size() < limit) {  // not a host: last
    hosts.emplace_back(kOtherHosts, &other_hosts_);
  }
  std::vector<Record> rows;
  rows.reserve(hosts.size());
  for (const auto& [key, st] : hosts) {
    const auto n = [](std::uint64_t v) { return Value(static_cast<std::int64_t>(v)); };
    std::vector<std::pair<std::uint64_t, Reason>> reasons;
    for (int i = 0; i <= static_cast<int>(Reason::other); ++i) {
      if (st->failed_by[i] > 0) reasons.emplace_back(st->failed_by[i], static_cast<Reason>(i));
    }
    std::stable_sort(reasons.begin(), reasons.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    std::string failures;
    for (const auto& [count, reason] : reasons) {
      failures += fmt::format("{}{} {}", failures.empty() ? "" : ", ", reason_name(reason), count);
    }
    Record r;
    r.append("host", Value(std::string(key)));
    r.append("requests", n(st->requests));
    r.append("ok", n(st->ok));
    r.append("failed", n(st->failed()));
    r.append("retries", n(st->retries));
    r.append("http_2xx", n(st->by_class[2]));
    r.append("http_3xx", n(st->by_class[3]));
    r.append("http_4xx", n(st->by_class[4]));
    r.append("http_5xx", n(st->by_class[5]));
    r.append("http_other", n(st->by_class[1] + st->by_class[6]));
    r.append("no_response", n(st->by_class[0]));
    r.append("bytes", n(st->bytes));
    r.append("mean_s", Value(st->requests ? st->seconds / static_cast<double>(st->requests) : 0.0));
    r.append("max_s", Value(st->max_seconds));
    r.append("breaker_opened", n(st->breaker_opened));
    r.append("failures", Value(std::move(failures)));
    rows.push_back(std::move(r));
  }
  return rows;
}

void HttpLoop::run() {
  pthread_setname_np(pthread_self(), ("io:" + node_id_).substr(0, 15).c_str());
  nodes::Utf8Ctype utf8;  // libcurl converts a redirect's host beyond ASCII itself
  while (true) {
    take_incoming();
    if (cancel_.load() && !aborted_) abort_everything();
    if (winding_down_.load() && !aborted_) drop_unstarted();
    auto now = Clock::now();
    fire_timers(now);
    if (!hashing_.empty()) hash_adopted();
    admit_all(now);
    int running = 0;
    curl_multi_perform(multi_, &running);
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
      if (msg->msg == CURLMSG_DONE) finish(msg->easy_handle, msg->data.result);
    }
    if (opt_.read_timeout && Clock::now() >= next_stall_check_) end_stalled(Clock::now());
    take_incoming();  // what the finished transfers let through (release: after_fetch) starts this turn
    now = Clock::now();
    admit_all(now);
    if (held_ > 0 && (held_ >= kMaxHeld || now - first_held_ >= kMaxHold || active_.empty() || out_->urgent() ||
                      quit_.load() || cancel_.load())) {
      out_->flush();
      held_ = 0;
    }
    if (opt_.table && now >= next_table_ && !host_stats_.empty()) {  // the table of hosts so far, for --metrics
      opt_.table("hosts", host_rows(kLiveHostRows));
      next_table_ = now + kLiveTableEvery;
    }
    if (quit_.load() && active_.empty() && timers_.empty() && queued_hosts_.empty() && hashing_.empty()) {
      std::lock_guard lock(incoming_mutex_);
      if (incoming_.empty()) break;
    }
    sleeping_.store(true);
    bool more;
    {
      std::lock_guard lock(incoming_mutex_);
      more = !incoming_.empty();
    }
    if (!more && !cancel_.load() && hashing_.empty()) wait_for_work(now);
    sleeping_.store(false);
  }
  for (auto& [easy, t] : active_) curl_multi_remove_handle(multi_, easy);
  active_.clear();
}

void HttpLoop::wait_for_work(Clock::time_point now) {
  const long timeout = poll_timeout_ms(now);
  if (now >= poll_failed_until_) {
    const CURLMcode code = curl_multi_poll(multi_, nullptr, 0, static_cast<int>(timeout), nullptr);
    if (code == CURLM_OK) return;
    const int error = errno;  // poll()'s: libcurl returns right after it
    poll_failed_until_ = now + kPollFailedFor;
    if (!std::exchange(told_poll_failed_, true)) {
      notice(fmt::format(
          "cannot wait for its connections: {} ({}); the node looks at them every {} ms instead until it can",
          curl_multi_strerror(code),
          error == EINVAL ? "more sockets than the limit of open files allows: was ulimit -n lowered under the run?"
                          : std::strerror(error),
          kPollFailedStep.count()));
    }
  }
  std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(kPollFailedStep, std::chrono::milliseconds(timeout)));
}

long HttpLoop::poll_timeout_ms(Clock::time_point now) {
  long timeout = 1000;
  if (held_ > 0) {  // results wait for at most kMaxHold
    timeout = std::max<long>(0, std::chrono::ceil<std::chrono::milliseconds>(first_held_ + kMaxHold - now).count());
  }
  long curl_timeout = -1;
  curl_multi_timeout(multi_, &curl_timeout);
  if (curl_timeout >= 0) timeout = std::min(timeout, curl_timeout);
  if (!timers_.empty()) {
    auto due = std::chrono::ceil<std::chrono::milliseconds>(timers_.begin()->first - now).count();
    timeout = std::min<long>(timeout, std::max<long>(0, due));
  }
  if (opt_.read_timeout && !active_.empty()) {
    auto due = std::chrono::ceil<std::chrono::milliseconds>(next_stall_check_ - now).count();
    timeout = std::min<long>(timeout, std::max<long>(0, due));
  }
  return timeout;
}

// read_timeout: a transfer whose bytes sent and received (headers, body, request and its body)
// have not changed for that long is ended as a timeout, retried as one ("timeout: no bytes came
// for 30s (read_timeout)"). Its clock starts once the request is on its way: until then the
// transfer is connecting (DNS, TCP, TLS, a proxy's tunnel), which connect_timeout bounds. Looked
// at every tenth of read_timeout (10-250 ms), so it fires at most that much late. libcurl's own
// CURLOPT_LOW_SPEED_TIME counts in whole seconds and averages the speed over the last five,
// which would let a stall go on for five seconds more.
void HttpLoop::end_stalled(Clock::time_point now) {
  const nanoseconds limit = *opt_.read_timeout;
  next_stall_check_ =
      now + std::clamp<nanoseconds>(limit / 10, std::chrono::milliseconds(10), std::chrono::milliseconds(250));
  std::vector<CURL*> stalled;
  for (auto& [easy, t] : active_) {
    if (!t->job) continue;  // robots.txt and token requests keep to timeout
    curl_off_t down = 0, up = 0, pretransfer = 0;
    long headers = 0, request = 0;
    curl_easy_getinfo(easy, CURLINFO_REQUEST_SIZE, &request);  // the request's head, once sent
    curl_easy_getinfo(easy, CURLINFO_PRETRANSFER_TIME_T, &pretransfer);
    if (request == 0 && pretransfer == 0) {  // still connecting: connect_timeout's time
      t->progress_at = now;
      continue;
    }
    curl_easy_getinfo(easy, CURLINFO_SIZE_DOWNLOAD_T, &down);
    curl_easy_getinfo(easy, CURLINFO_SIZE_UPLOAD_T, &up);
    curl_easy_getinfo(easy, CURLINFO_HEADER_SIZE, &headers);
    const std::int64_t seen = down + up + headers + request;
    if (seen != t->progress) {
      t->progress = seen;
      t->progress_at = now;
    } else if (now - t->progress_at >= limit) {
      stalled.push_back(easy);
    }
  }
  for (CURL* easy : stalled) {
    Transfer& t = *active_.at(easy);
    *fmt::format_to_n(t.error, CURL_ERROR_SIZE - 1, "no bytes came for {} (read_timeout)", duration_text(limit)).out =
        '\0';
    finish(easy, CURLE_OPERATION_TIMEDOUT);
  }
}

void HttpLoop::take_incoming() {
  std::vector<std::unique_ptr<Job>> jobs;
  {
    std::lock_guard lock(incoming_mutex_);
    jobs.swap(incoming_);
  }
  for (auto& job : jobs) accept(std::move(job));
}

void HttpLoop::accept(std::unique_ptr<Job> job) {
  if (cancel_.load()) return fail(std::move(job), Reason::cancelled, 0, "cancelled: the run was stopped");
  if (winding_down_.load()) {  // a graceful stop: nothing new starts (see drop_unstarted)
    set_aside(*job);
    job.reset();
    out_->discard(1);
    return;
  }
  if (!job->setup_error.empty()) {
    std::string message = job->setup_error;
    Reason reason = job->setup_reason;
    return fail(std::move(job), reason, 0, std::move(message));
  }
  if (files_ && opt_.download->keep && !opt_.download->served && keep_existing(job)) return;
  if (files_ && !job->resume_key.empty() && adopt_file(job)) return;
  enqueue(std::move(job), false);
}

// The file's name is the rendered `path`, or the URL's hash and the URL's extension: a file named by
// its Content-Type's extension is only known after the request (and kept then, see place_file()).
bool HttpLoop::keep_existing(std::unique_ptr<Job>& job) {
  const std::string path = opt_.download->dir + "/" + download_name(*job, "");
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  if (!run_files_.claim(path, job->url)) {
    fail(std::move(job), Reason::invalid, 0, "download: " + nodes::RunFiles::conflict(path));
    return true;
  }
  Record& r = job->record;
  r.set("file", Value(path));
  r.set("file_size", Value(static_cast<std::int64_t>(st.st_size)));
  if (opt_.download->sha256) r.set("sha256", Value());  // not read back: the file was not fetched
  r.set("attempts", Value(std::int64_t{0}));
  hold_result();
  out_->complete(std::move(r));
  return true;
}

const FetchOptions::Auth* HttpLoop::auth_for(std::string_view name, const HostLimits& limits) const {
  if (limits.entry >= 0 && !opt_.host_auth.empty()) {
    const auto& own = opt_.host_auth[static_cast<std::size_t>(limits.entry)];
    if (own) return &*own;
  }
  if (opt_.auth) return &*opt_.auth;
  const FetchOptions::Auth* fallback = nullptr;
  for (const auto& [machine, auth] : opt_.netrc) {
    if (machine.empty()) {
      fallback = fallback ? fallback : &auth;
    } else if (nodes::iequals(machine, name)) {
      return &auth;
    }
  }
  return fallback;
}

void HttpLoop::enqueue(std::unique_ptr<Job> job, bool front) {
  auto [it, inserted] = hosts_.try_emplace(job->host);
  Host& host = it->second;
  if (inserted) {
    const auto now = Clock::now();
    host.limits = &limits_.match(host_of_key(it->first));
    host.auth = auth_for(host_of_key(it->first), *host.limits);
    host.stats = &stats_of(it->first);
    host.bucket = TokenBucket(host.limits->rate, host.limits->burst, now);
    host.breaker = CircuitBreaker(opt_.breaker_threshold, opt_.breaker_recovery);
    host.last_used = now;
  }
  if (front) {
    host.waiting.push_front(std::move(job));
  } else {
    host.waiting.push_back(std::move(job));
  }
  if (!host.queued) {
    host.queued = true;
    queued_hosts_.push_back(&*it);  // elements of an unordered_map keep their address
  }
  if (inserted && hosts_.size() > next_sweep_) forget_idle_hosts(Clock::now());
}

// A host that can be dropped and re-created later without changing what happens: nothing waits,
// runs or is scheduled for it, its breaker is closed (or open past its recovery time, when a
// fresh one would let a request through as well), its rate bucket is full again, and with
// `adaptive` its allowance is back at per_host.
bool HttpLoop::forgettable(const Host& host, Clock::time_point now) const {
  const bool breaker_at_rest = host.breaker.state() == CircuitBreaker::State::closed ||
                               (host.breaker.state() == CircuitBreaker::State::open && host.breaker.retry_at() <= now);
  return !host.queued && host.in_flight == 0 && host.retries_scheduled == 0 && !host.wake_scheduled &&
         host.robots != Host::Robots::fetching && host.robots != Host::Robots::retrying && breaker_at_rest &&
         host.bucket.full(now) && host.paused_until <= now &&
         (host.allowed <= 0 || host.allowed >= limits_of(host).per_host);
}

void HttpLoop::forget_idle_hosts(Clock::time_point now) {
  std::vector<std::pair<Clock::time_point, Hosts::iterator>> idle;
  for (auto it = hosts_.begin(); it != hosts_.end(); ++it) {
    if (forgettable(it->second, now)) idle.emplace_back(it->second.last_used, it);
  }
  const std::size_t keep = kMaxIdleHosts / 2;
  const std::size_t excess = std::min(idle.size(), hosts_.size() > keep ? hosts_.size() - keep : 0);
  std::nth_element(idle.begin(), idle.begin() + static_cast<std::ptrdiff_t>(excess), idle.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (std::size_t i = 0; i < excess; ++i) hosts_.erase(idle[i].second);
  // Hosts that must stay (busy ones) do not make every new host sweep again.
  next_sweep_ = std::max(kMaxIdleHosts, 2 * hosts_.size());
}

void HttpLoop::fire_timers(Clock::time_point now) {
  while (!timers_.empty() && timers_.begin()->first <= now) {
    Timer timer = std::move(timers_.begin()->second);
    timers_.erase(timers_.begin());
    if (timer.job) {
      if (auto it = hosts_.find(timer.job->host); it != hosts_.end()) --it->second.retries_scheduled;
      enqueue(std::move(timer.job), true);
    } else if (timer.token) {
      start_token(now);
    } else if (timer.endpoint_keys) {
      start_endpoint_keys();
    } else if (auto it = hosts_.find(timer.host); it != hosts_.end()) {
      if (!timer.robots) {
        it->second.wake_scheduled = false;
      } else if (it->second.robots == Host::Robots::retrying) {
        it->second.robots = Host::Robots::unknown;  // admission fetches it again
      }
    }
  }
}

void HttpLoop::admit_all(Clock::time_point now) {
  if (aborted_) return;
  if (opt_.oauth2 && !queued_hosts_.empty() && !token_usable(now)) return;
  if (opt_.aws && !opt_.aws->endpoint.empty() && !queued_hosts_.empty() && !endpoint_keys_usable(now)) return;
  for (std::size_t i = 0; i < queued_hosts_.size();) {
    auto& [key, host] = *queued_hosts_[i];
    admit(key, host, now);
    if (host.waiting.empty()) {
      host.queued = false;
      queued_hosts_[i] = queued_hosts_.back();
      queued_hosts_.pop_back();
    } else {
      ++i;
    }
  }
}

void HttpLoop::admit(const std::string& key, Host& host, Clock::time_point now) {
  // RFC 9309: rules are not used for more than a day (robots_max_age); the next request waits
  // for a fresh copy. Requests under way go on.
  const nanoseconds robots_age =
      host.robots_unreachable ? std::min(opt_.robots_max_age, opt_.breaker_recovery) : opt_.robots_max_age;
  if (opt_.robots && host.robots == Host::Robots::ready && now - host.robots_at >= robots_age) {
    host.robots = Host::Robots::unknown;
  }
  if (opt_.robots && host.robots != Host::Robots::ready) {
    if (host.robots == Host::Robots::unknown && !sockets_scarce(now)) start_robots(key, host);
    return;  // jobs wait until the host's robots.txt is known
  }
  if (host.paused_until > now && !host.waiting.empty()) {
    if (!host.wake_scheduled) {
      host.wake_scheduled = true;
      timers_.emplace(host.paused_until, Timer{nullptr, key});
    }
    return;
  }
  while (!host.waiting.empty() && host.in_flight < in_flight_limit(host) && !sockets_scarce(now)) {
    if (opt_.robots && host.delay_refused) {
      auto job = std::move(host.waiting.front());
      host.waiting.pop_front();
      fail(std::move(job), Reason::robots, 0, *host.delay_refused);
      continue;
    }
    if (opt_.robots) {
      Job& next = *host.waiting.front();
      if (!host.rules.allows_everything() && next.path.empty()) next.path = robots_path(next.url);
      if (!host.rules.allows_everything() && !host.rules.allowed(next.path)) {
        auto job = std::move(host.waiting.front());
        host.waiting.pop_front();
        if (host.robots_unreachable) {
          fail(std::move(job), host.robots_unreachable->first, 0, host.robots_unreachable->second);
        } else {
          fail(std::move(job), Reason::robots, 0,
               fmt::format("robots: disallowed by {}/robots.txt for user agent '{}'", key, opt_.user_agent));
        }
        continue;
      }
    }
    if (host.bucket.limited()) {
      auto next = host.bucket.next_token(now);
      if (next > now) {
        if (!host.wake_scheduled) {
          host.wake_scheduled = true;
          timers_.emplace(next, Timer{nullptr, key});
        }
        return;
      }
    }
    auto admission = host.breaker.admit(now);
    if (admission == CircuitBreaker::Admission::reject) {
      auto wait = std::chrono::duration_cast<nanoseconds>(host.breaker.retry_at() - now);
      std::string message =
          fmt::format("circuit_open: {} failed {} times in a row; next probe in {}", key,
                      host.breaker.consecutive_failures(), duration_text(std::max(nanoseconds(0), wait)));
      while (!host.waiting.empty()) {
        auto job = std::move(host.waiting.front());
        host.waiting.pop_front();
        fail(std::move(job), Reason::circuit_open, 0, message);
      }
      return;
    }
    host.bucket.try_take(now);
    auto job = std::move(host.waiting.front());
    host.waiting.pop_front();
    host.last_used = now;
    start_transfer(std::move(job), host, admission == CircuitBreaker::Admission::probe);
  }
}

std::unique_ptr<HttpLoop::Transfer> HttpLoop::take_transfer(const std::string& url) {
  std::unique_ptr<Transfer> t;
  if (idle_.empty()) {
    t = std::make_unique<Transfer>();
    t->bodies = bodies_.get();
    t->received = opt_.received;
    t->easy = fresh_handle(*t);
    if (!t->easy) throw std::bad_alloc();
  } else {
    t = std::move(idle_.back());
    idle_.pop_back();
  }
  curl_easy_setopt(t->easy, CURLOPT_URL, url.c_str());
  if (!proxies_.empty()) {
    t->proxy = pick_proxy(Clock::now());
    curl_easy_setopt(t->easy, CURLOPT_PROXY, proxies_[static_cast<std::size_t>(t->proxy)].url.c_str());
  } else if (!opt_.proxy && env_proxies_.http != env_proxies_.https) {  // by the URL's scheme, as libcurl chooses
    const bool https = url.size() > 5 && nodes::iequals(std::string_view(url).substr(0, 6), "https:");
    curl_easy_setopt(t->easy, CURLOPT_PROXY, (https ? env_proxies_.https : env_proxies_.http).c_str());
  }
  return t;
}

int HttpLoop::pick_proxy(Clock::time_point now) {
  const std::size_t n = proxies_.size();
  std::size_t pick = next_proxy_ % n;
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t at = (next_proxy_ + i) % n;
    if (proxies_[at].benched_until <= now) {
      pick = at;
      break;
    }
    if (proxies_[at].benched_until < proxies_[pick].benched_until) pick = at;
  }
  next_proxy_ = pick + 1;
  return static_cast<int>(pick);
}

void HttpLoop::note_proxy(int index, bool failed, Clock::time_point now) {
  Proxy& p = proxies_[static_cast<std::size_t>(index)];
  if (!failed) {
    p.failures = 0;
  } else if (opt_.breaker_threshold > 0 && ++p.failures >= opt_.breaker_threshold) {
    p.failures = 0;
    p.benched_until = now + opt_.breaker_recovery;
  }
}

// The options every transfer of this node shares, on the template that fresh_handle() copies.
void HttpLoop::set_options(CURL* e) {
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);  // redirects are followed here, hop by hop, with checks
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!opt_.ca_file.empty()) curl_easy_setopt(e, CURLOPT_CAINFO, opt_.ca_file.c_str());
  if (!opt_.client_cert.empty()) {  // sent to a server that asks for one in the handshake
    curl_easy_setopt(e, CURLOPT_SSLCERT, opt_.client_cert.c_str());
    curl_easy_setopt(e, CURLOPT_SSLKEY, (opt_.client_key.empty() ? opt_.client_cert : opt_.client_key).c_str());
  }
  // The proxy environment, read once (env_proxies_): libcurl reads it again for every transfer, five
  // getenv() calls that each walk the whole environment. Set, these two keep it from looking.
  curl_easy_setopt(e, CURLOPT_NOPROXY, env_proxies_.no_proxy.c_str());
  if (opt_.proxy) {
    curl_easy_setopt(e, CURLOPT_PROXY, opt_.proxy->c_str());  // "" turns the environment's off
  } else if (env_proxies_.http == env_proxies_.https) {
    curl_easy_setopt(e, CURLOPT_PROXY, env_proxies_.http.c_str());  // "": none
  }
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
                   static_cast<long>(std::chrono::ceil<std::chrono::milliseconds>(opt_.timeout).count()));
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(std::chrono::ceil<std::chrono::milliseconds>(opt_.connect_timeout).count()));
  curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(opt_.max_body));
  if (opt_.read_timeout) {
    // A request body over 1 MiB waits for the server's "100 Continue" up to 1 s before it is sent:
    // with no byte moving, a shorter read_timeout would end it. Half of it is wait enough.
    const auto wait =
        std::clamp<nanoseconds>(*opt_.read_timeout / 2, std::chrono::milliseconds(1), std::chrono::seconds(1));
    curl_easy_setopt(e, CURLOPT_EXPECT_100_TIMEOUT_MS,
                     static_cast<long>(std::chrono::ceil<std::chrono::milliseconds>(wait).count()));
  }
  if (opt_.refuse_private) curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_prereq);
  curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, base_headers_);
  curl_easy_setopt(e, CURLOPT_PROXYHEADER, base_headers_);  // a proxy's CONNECT carries it too
  // proxy_auth: libcurl answers the proxy's 407 challenge itself. NTLM authenticates the connection
  // to the proxy (and each CONNECT tunnel): libcurl gives such a connection only to transfers with
  // the same proxy credentials, and they send no Proxy-Authorization on it.
  if (opt_.proxy_auth != FetchOptions::Auth::Scheme::basic) {
    curl_easy_setopt(e, CURLOPT_PROXYAUTH, curl_auth(opt_.proxy_auth));
  }
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, opt_.http2 ? CURL_HTTP_VERSION_2TLS : CURL_HTTP_VERSION_1_1);
  if (opt_.compressed) curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(e, CURLOPT_SHARE, share_);
  if (opt_.cookies || !opt_.cookie_file.empty()) curl_easy_setopt(e, CURLOPT_COOKIEFILE, "");
}

CURL* HttpLoop::fresh_handle(Transfer& t) {
  if (!template_) {
    template_ = curl_easy_init();
    if (!template_) return nullptr;
    set_options(template_);
  }
  CURL* e = curl_easy_duphandle(template_);
  if (!e) return nullptr;
  // What points to `t`, and what duphandle leaves out (the share).
  t.max_body = opt_.max_body;
  curl_easy_setopt(e, CURLOPT_PRIVATE, &t);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t.error);
  if (opt_.refuse_private) curl_easy_setopt(e, CURLOPT_PREREQDATA, &t);
  curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, &t);
  curl_easy_setopt(e, CURLOPT_SHARE, share_);
  return e;
}

// Back to the pool, ready for the next transfer, with a fresh handle. libcurl 7.88 keeps a pointer to
// the last response header a handle stored, and frees that header when the handle's next transfer
// starts: a response whose first header line is folded (begins with a space or a tab: any server
// may send one) is then appended through it, a heap use-after-free (curl issue #11101, fixed in
// 8.1; found by tests/fuzz/fuzz_responses.cpp). So a handle serves one transfer, one redirect hop
// or one attempt. What is worth keeping lives elsewhere: connections and DNS in the multi handle,
// TLS sessions and cookies in the share.
void HttpLoop::recycle(std::unique_ptr<Transfer> t) {
  curl_easy_cleanup(t->easy);
  t->easy = fresh_handle(*t);
  if (!t->easy) return;  // ~Transfer: out of memory, the pool makes another one when needed
  curl_slist_free_all(t->headers);
  t->headers = nullptr;
  t->job.reset();
  t->robots_host.clear();
  t->token = false;
  t->endpoint_keys = false;
  bodies_->give(std::move(t->body));  // usually in a record already; a robots.txt or failed body comes back here
  t->body = std::string();
  t->sized = false;
  t->too_large = false;
  t->types = nullptr;
  t->wrong_type = false;
  t->refused_ip.clear();
  t->probe = false;
  t->discard_file();  // a download that did not succeed
  t->files = nullptr;
  t->written = 0;
  t->resumed_from = 0;
  t->validator.clear();
  t->earlier_run = false;
  t->bad_range = false;
  EVP_MD_CTX_free(t->digest);
  t->digest = nullptr;
  t->write_error.clear();
  t->socket_errno = 0;
  t->error[0] = '\0';
  idle_.push_back(std::move(t));
}

void HttpLoop::start_robots(const std::string& key, Host& host) {
  auto t = take_transfer(key + "/robots.txt");
  t->robots_host = key;
  if (!base_headers_ && !agent_line_.empty()) {  // the job headers carry their own User-Agent
    t->headers = curl_slist_append(nullptr, agent_line_.c_str());
    curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, t->headers);
  }
  // RFC 9309: a crawler follows at least five redirects of robots.txt (http to https, say), to
  // http(s) only (REDIR_PROTOCOLS); the rules found apply to `key`. Jobs' redirects are followed
  // hop by hop with their own checks instead (the handle is not used again: recycle()).
  curl_easy_setopt(t->easy, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(t->easy, CURLOPT_MAXREDIRS, 5L);
  // Its own size cap, not max_body: the first kRobotsMax bytes are read and parsed (RFC 9309
  // asks for at least 500 KiB), however large the file or small max_body.
  curl_easy_setopt(t->easy, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(0));
  t->max_body = kRobotsMax;
  host.robots = Host::Robots::fetching;
  curl_multi_add_handle(multi_, t->easy);
  active_.emplace(t->easy, std::move(t));
}

// RFC 9309: a 2xx body is parsed; 4xx (and more than five redirects) means no rules; 5xx or no
// answer means "disallow all". A 429 (too many requests) counts as unreachable, as for Google's
// crawler: the site asks to slow down, not to be crawled without rules.
void HttpLoop::finish_robots(Transfer& t, CURLcode code) {
  Host& host = hosts_[t.robots_host];
  long status = 0;
  curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &status);
  const bool no_socket = out_of_sockets(t, code);  // no request was sent
  // Asked for again once a descriptor is free, as a job is (conclude()).
  if (bool later = false; no_socket && asks_again(host.robots_lone_since, Clock::now(), later)) {
    host.robots = later ? Host::Robots::retrying : Host::Robots::unknown;
    if (later) timers_.emplace(Clock::now() + kLoneWait, Timer{nullptr, t.robots_host, true});
    return cap_sockets(t.socket_errno, Clock::now());
  }
  host.robots_lone_since = {};
  if (t.refused_ip.empty() && !no_socket) count_transfer(stats_of(t.robots_host, host), t.easy, status, t.body.size());
  // Rules read from a body cut short by a guessed length could allow what the file disallows.
  if (std::string lengths; code == CURLE_OK && status >= 200 && status < 300 && conflicting_lengths(t.easy, lengths)) {
    code = CURLE_WEIRD_SERVER_REPLY;
    *fmt::format_to_n(t.error, CURL_ERROR_SIZE - 1, "conflicting Content-Length headers ({})", lengths).out = '\0';
  }
  if (!t.refused_ip.empty()) {
    // The host is at a private address: its pages would be refused too, and say so.
    host.rules = RobotsRules::disallow_all();
    host.robots_unreachable.emplace(Reason::refused, private_message(t.robots_host + "/robots.txt", t.refused_ip));
  } else if ((code == CURLE_OK || t.too_large) && status >= 200 && status < 300) {
    // A file cut at kRobotsMax loses its last, partial line.
    host.rules = RobotsRules::parse(t.too_large ? t.body.substr(0, t.body.rfind('\n') + 1) : t.body, opt_.user_agent);
    host.robots_unreachable.reset();
  } else if ((code == CURLE_OK && status >= 300 && status < 500 && status != 429) || code == CURLE_TOO_MANY_REDIRECTS) {
    host.rules = RobotsRules::allow_all();
    host.robots_unreachable.reset();
  } else if (++host.robots_attempts < opt_.retry.attempts && !cancel_.load() && !winding_down_.load()) {
    // Unreachable for now (a 503 while the site restarts, a timeout): retried with the node's
    // backoff (a 429 or 503's Retry-After, at most retries.max) before the host is given up as
    // disallowed, which would fail every URL it has.
    host.robots = Host::Robots::retrying;
    const nanoseconds wait =
        retry_after(t.easy, code == CURLE_OK ? status : 0).value_or(opt_.retry.backoff(host.robots_attempts, rng_));
    timers_.emplace(Clock::now() + wait, Timer{nullptr, t.robots_host, true});
    return;
  } else if (host.robots_at == Clock::time_point{} || host.robots_unreachable) {
    // No rules known: the host is disallowed (RFC 9309) until its robots.txt is fetched again
    // after recovery_timeout. Its jobs say why: "disallowed by robots.txt" would hide a host that
    // is down, and a transport failure keeps its own reason (connect, dns, timeout, ...).
    host.rules = RobotsRules::disallow_all();
    const int attempts = host.robots_attempts;
    Reason reason = code == CURLE_OK ? Reason::robots : classify(code, false);
    std::string why = code == CURLE_OK ? fmt::format("HTTP {}", status)
                                       : std::string(t.error[0] ? t.error : curl_easy_strerror(code));
    host.robots_unreachable.emplace(
        reason,
        fmt::format("{}: {}/robots.txt could not be fetched ({}{}); the host is disallowed until it can be "
                    "(RFC 9309), next try in {}",
                    reason_name(reason), t.robots_host, why, attempts > 1 ? fmt::format(", {} attempts", attempts) : "",
                    duration_text(std::min(opt_.robots_max_age, opt_.breaker_recovery))));
  }  // else a fresh copy is unreachable: the rules it had stay in use (RFC 9309)
  const auto now = Clock::now();
  const HostLimits& limits = limits_of(host);
  host.delay_refused.reset();
  if (auto delay = host.rules.crawl_delay();
      delay && *delay > std::chrono::duration<double>(opt_.max_crawl_delay).count()) {
    // A day's delay would fetch one URL a day: the run would wait days for the host (or for ever).
    host.delay_refused = fmt::format(
        "robots: {}/robots.txt asks for a Crawl-delay of {:g} s, longer than max_crawl_delay ({}): the host's URLs "
        "are not fetched",
        t.robots_host, *delay, duration_text(opt_.max_crawl_delay));
  } else if (delay && (limits.rate <= 0 || 1.0 / *delay < limits.rate)) {
    host.bucket = TokenBucket(1.0 / *delay, 1, now);
    host.crawl_delay = true;
  } else if (host.crawl_delay) {  // fetched again, and the Crawl-delay is gone
    host.bucket = TokenBucket(limits.rate, limits.burst, now);
    host.crawl_delay = false;
  }
  host.robots = Host::Robots::ready;
  host.robots_at = now;
  host.robots_attempts = 0;
  host.robots_lookups_in_shortage = 0;
}

void HttpLoop::start_transfer(std::unique_ptr<Job> job, Host& host, bool probe) {
  // aws_sigv4: the request signed here (aws_authorization(): its path and query as sent, in AWS's
  // encoding), not to another origin.
  const bool aws = opt_.aws && !job->crossed;
  if (aws && !opt_.aws->credentials_file.empty()) reload_aws_credentials(Clock::now());
  if (aws && aws_has_fresh_.load(std::memory_order_acquire)) take_fresh_aws_keys();
  const std::string signed_url = aws ? aws_canonical_url(job->url) : std::string();
  auto t = take_transfer(aws ? signed_url : job->url);  // (both lvalues: no copy of the URL)
  CURL* e = t->easy;
  t->probe = probe;
  ++job->attempts;
  job->revalidating = false;
  // oauth2's token, not to another origin than the request's (render_headers()).
  job->token = opt_.oauth2 && !job->crossed ? token_.generation : 0;
  // auth's credentials, on this transfer's handle only (the next one is a fresh copy of the
  // template): not to another origin either. libcurl answers a Digest or NTLM challenge (401)
  // itself. NTLM authenticates the connection, which HTTP/2 does not allow (a server asks for
  // HTTP/1.1 then): HTTP/1.1 from the start; libcurl gives such a connection only to transfers with
  // the same credentials (no other one: robots.txt never rides on it), and a transfer on one sends
  // no Authorization at all.
  if (const FetchOptions::Auth* auth = host.auth; auth && !job->crossed) {
    using Scheme = FetchOptions::Auth::Scheme;
    curl_easy_setopt(e, CURLOPT_HTTPAUTH, curl_auth(auth->scheme));
    if (auth->scheme == Scheme::ntlm) curl_easy_setopt(e, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_USERNAME, auth->user.c_str());
    curl_easy_setopt(e, CURLOPT_PASSWORD, auth->password.c_str());
  }
  if (!job->headers.empty() || job->partial || job->stale || job->token || aws) {
    const auto has = [&job](std::string_view name) { return has_header(job->headers, name); };
    // The node's User-Agent, unless a `hosts` entry's headers give one of their own.
    if (base_headers_ && !has("user-agent")) t->headers = curl_slist_append(nullptr, agent_line_.c_str());
    for (const auto& h : job->headers) t->headers = curl_slist_append(t->headers, h.c_str());
    if (job->token) t->headers = curl_slist_append(t->headers, token_.header.c_str());
    if (aws) {
      // Sent and signed: the Host as libcurl would send it, the time, the body's hash (S3 wants it)
      // and the session token; signed too, the job's headers but the User-Agent (a proxy may
      // change it).
      std::vector<std::string> own;
      if (!has("host")) own.push_back("Host: " + aws_host(signed_url));
      const std::string date = amz_date(std::chrono::system_clock::now());
      own.push_back("x-amz-date: " + date);
      const std::string payload_hash = sha256_hex(job->body ? *job->body : std::string());
      own.push_back("x-amz-content-sha256: " + payload_hash);
      if (!opt_.aws->session_token.empty()) own.push_back("x-amz-security-token: " + opt_.aws->session_token);
      std::vector<std::string> signed_lines = own;
      for (const auto& h : job->headers) {
        if (!nodes::iequals(std::string_view(h).substr(0, h.find(':')), "user-agent")) signed_lines.push_back(h);
      }
      own.push_back("Authorization: " +
                    aws_authorization(*opt_.aws, job->method, signed_url, signed_lines, payload_hash, date));
      for (const auto& line : own) t->headers = curl_slist_append(t->headers, line.c_str());
    }
    if (job->partial) {  // the rest of the file, if it is still the version its first bytes came from
      t->headers = curl_slist_append(t->headers, fmt::format("Range: bytes={}-", job->partial->size).c_str());
      t->headers = curl_slist_append(t->headers, ("If-Range: " + job->partial->validator).c_str());
    }
    // cache: a stale response is asked for with its validators (not on a redirect's hop, nor when
    // the node sends conditions of its own): 304 Not Modified keeps it.
    if (job->stale && job->redirects == 0 && job->stale->final_url == job->stale->url && !has("if-none-match") &&
        !has("if-modified-since")) {
      if (auto etag = cached_header(job->stale->headers, "etag")) {
        t->headers = curl_slist_append(t->headers, ("If-None-Match: " + *etag).c_str());
        job->revalidating = true;
      }
      if (auto date = cached_header(job->stale->headers, "last-modified")) {
        t->headers = curl_slist_append(t->headers, ("If-Modified-Since: " + *date).c_str());
        job->revalidating = true;
      }
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
  }
  if (job->method == "HEAD") {
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    // No body comes: the Content-Length of a file larger than max_body is an answer, not too large
    // (libcurl refuses it against CURLOPT_MAXFILESIZE even so).
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(0));
  } else if (job->method == "POST") {
    curl_easy_setopt(e, CURLOPT_POST, 1L);
  } else if (job->method != "GET") {
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, job->method.c_str());
  }
  if (job->body) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(job->body->size()));
    curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, job->body->c_str());
  }
  if (!opt_.content_types.empty()) {
    t->types = &opt_.content_types;
    t->ok_status = &opt_.ok_status;
  }
  if (files_) {
    t->files = &*files_;
    t->ok_status = &opt_.ok_status;
    t->folder = download_folder(*job);
    if (job->partial) {
      PartialDownload& p = *job->partial;
      t->fd = std::exchange(p.fd, -1);
      t->temp = std::exchange(p.temp, std::string());
      t->written = t->resumed_from = p.size;
      t->validator = std::move(p.validator);
      t->resumable = p.resumable;
      t->earlier_run = p.earlier_run;
      t->digest = std::exchange(p.digest, nullptr);
      job->partial.reset();
    } else if (opt_.download->sha256) {
      t->digest = EVP_MD_CTX_new();
      if (!t->digest || !EVP_DigestInit_ex(t->digest, EVP_sha256(), nullptr)) throw std::bad_alloc();
    }
  }
  job->proxy = t->proxy;
  t->job = std::move(job);
  if (opt_.adaptive) t->started = Clock::now();
  if (opt_.read_timeout) {
    t->progress = 0;
    t->progress_at = Clock::now();
  }
  ++host.in_flight;
  curl_multi_add_handle(multi_, e);
  active_.emplace(e, std::move(t));
}

void HttpLoop::finish(CURL* easy, CURLcode code) {
  auto it = active_.find(easy);
  if (it == active_.end()) return;
  std::unique_ptr<Transfer> t = std::move(it->second);
  active_.erase(it);
  curl_multi_remove_handle(multi_, easy);
  if (int no_descriptor = lookup_errno(code, t->error)) {
    t->socket_errno = no_descriptor;
  } else if (is_lookup_failure(code) && Clock::now() < socket_cap_until_) {
    // During a shortage getaddrinfo() on libcurl's thread may have found no descriptor although one
    // is free now (some transfer ended since): not an answer about the name, which is looked up
    // again (kShortLookups times at most, in case the name has none).
    int token_lookups = kShortLookups;  // oauth2's token request: its failure is retried as any
    int& repeated = t->job     ? t->job->lookups_in_shortage
                    : t->token ? token_lookups
                               : hosts_[t->robots_host].robots_lookups_in_shortage;
    if (repeated < kShortLookups) {
      ++repeated;
      t->socket_errno = shortage_errno_;
    }
  }
  if (t->proxy >= 0 && code != CURLE_ABORTED_BY_CALLBACK && !out_of_sockets(*t, code)) {
    note_proxy(t->proxy, is_host_failure(classify(code, t->too_large)), Clock::now());
  }
  if (t->job) {
    conclude(*t, code);
  } else if (t->token) {
    finish_token(*t, code);
  } else if (t->endpoint_keys) {
    finish_endpoint_keys(*t, code);
  } else {
    finish_robots(*t, code);
  }
  recycle(std::move(t));
}

bool HttpLoop::render_headers(const Record& record, const std::string& host, bool credentials,
                              std::vector<std::string>& out, std::string& error) const {
  out.clear();
  bool ok = true;
  auto add = [&](const std::string& name, const FieldTemplate& value) {
    std::string text = value.render(record);
    if (!header_value_ok(text) && ok) {
      ok = false;
      error = fmt::format(
          "header '{}' would hold a line break from the record's fields, which would end it and start another "
          "header: not sent",
          name);
    }
    out.push_back(fmt::format("{}: {}", name, text));
  };
  const int entry = !host_headers_ || host.empty() ? -1 : limits_.match(host_of_key(host)).entry;
  const auto* own = entry >= 0 ? &opt_.host_headers[static_cast<std::size_t>(entry)] : nullptr;
  for (const auto& [name, value] : opt_.headers) {
    // A redirect to another origin takes no credentials along: the node's Authorization and Cookie
    // (an API token, a session) are not sent to this hop nor the ones after it, as libcurl and
    // browsers do, so that a site cannot send the crawler with its token to a host of its choosing.
    if (!credentials && (nodes::iequals(name, "authorization") || nodes::iequals(name, "cookie"))) continue;
    if (own) {
      const std::string lower = nodes::to_lower(name);
      if (std::any_of(own->begin(), own->end(), [&](const auto& h) { return nodes::iequals(h.first, lower); }))
        continue;  // the host's entry sets its own
    }
    add(name, value);
  }
  if (own) {
    for (const auto& [name, value] : *own) add(name, value);
  }
  return ok;
}

int HttpLoop::in_flight_limit(const Host& host) const {
  const int per_host = limits_of(host).per_host;
  if (!opt_.adaptive || host.allowed <= 0) return per_host;
  return std::clamp(static_cast<int>(host.allowed), 1, per_host);
}

// Additive increase, multiplicative decrease, as TCP does with its window: an overloaded host's
// allowance halves (not below one request), and grows by one after as many successes as it allows,
// back up to per_host. Failures of transfers that started before the last cut are the same overload
// seen late (a burst of 503s to the requests of one moment) and cut nothing more. A notice says
// when a host first falls below its per_host, and when it is back.
void HttpLoop::adapt(const std::string& key, Host& host, std::string_view overload, Clock::time_point started,
                     Clock::time_point now) {
  if (!opt_.adaptive) return;
  const double ceiling = limits_of(host).per_host;
  if (host.allowed <= 0) host.allowed = ceiling;
  if (!overload.empty()) {
    if (started < host.cut_at) return;
    const bool was_full = host.allowed >= ceiling;
    host.allowed = std::max(1.0, host.allowed / 2);
    host.cut_at = now;
    if (was_full && host.allowed < ceiling) {
      notice(fmt::format("host {} is overloaded ({}): {} requests at a time instead of {} (adaptive)", key, overload,
                         in_flight_limit(host), limits_of(host).per_host));
    }
  } else if (host.allowed < ceiling) {
    host.allowed = std::min(ceiling, host.allowed + 1.0 / host.allowed);
    if (host.allowed >= ceiling) {
      notice(fmt::format("host {} is back at {} requests at a time (adaptive)", key, limits_of(host).per_host));
    }
  }
}

// The host's breaker after a transfer that failed (`why`) or that the host answered: whoever runs
// the pipeline hears when a breaker opens, and when it closes again.
void HttpLoop::breaker_failed(const std::string& key, Host& host, Clock::time_point now, std::string_view why) {
  const auto before = host.breaker.state();
  host.breaker.on_failure(now);
  if (before == CircuitBreaker::State::open || host.breaker.state() != CircuitBreaker::State::open) return;
  ++stats_of(key, host).breaker_opened;
  const std::string recovery = duration_text(opt_.breaker_recovery);
  if (before == CircuitBreaker::State::half_open) {
    notice(fmt::format("host {}: the probe failed ({}); circuit breaker open again, next probe in {}", key, why,
                       recovery));
  } else {
    notice(
        fmt::format("host {}: circuit breaker open after {} failures in a row (last: {}); its requests fail with "
                    "reason circuit_open until a probe in {}",
                    key, host.breaker.consecutive_failures(), why, recovery));
  }
}

void HttpLoop::breaker_succeeded(const std::string& key, Host& host) {
  const auto before = host.breaker.state();
  host.breaker.on_success();
  if (before != CircuitBreaker::State::closed && host.breaker.state() == CircuitBreaker::State::closed) {
    notice(fmt::format("host {}: circuit breaker closed, the host answers again", key));
  }
}

// A transfer found no descriptor for its socket (or its name's lookup): the job goes back to the
// front of its host's queue, no attempt counted (it never reached the host), and for a while no
// more transfers run than were in flight then (cap_sockets()). Each transfer holds a descriptor, so
// the ones in flight are what fits.
void HttpLoop::wait_for_socket(std::unique_ptr<Job> job, Host& host, int socket_errno, bool probe,
                               Clock::time_point now, bool later) {
  if (probe) host.breaker.on_probe_abandoned();
  --job->attempts;
  cap_sockets(socket_errno, now);
  if (!later) return enqueue(std::move(job), true);
  ++host.retries_scheduled;  // the host stays known while the job waits (fire_timers())
  timers_.emplace(now + kLoneWait, Timer{std::move(job), {}});
}

// Each transfer holds a descriptor for its socket (a download one more for its file), and the rest of
// the run needs its own (stores, save, sinks, name lookups): a node that took all the limit of open
// files allows would leave save unable to open a file (seen: a run of fetch -> save under ulimit -n
// 48 failed at its first file). So the transfers at a time are capped at what the limit leaves
// after the descriptors open now and a reserve (kReservedDescriptors, or an eighth of the limit),
// and libcurl keeps no more connections than that (idle ones close first). The reactive cap
// (cap_sockets()) still covers what this cannot foresee, such as two fetch nodes sharing the limit.
void HttpLoop::budget_descriptors() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return;
  std::size_t open = 0;  // the listing's own descriptor not counted
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end; it.increment(ec)) ++open;
  if (open > 0) --open;
  const std::size_t most = limit.rlim_cur;
  const std::size_t reserve = std::max<std::size_t>(kReservedDescriptors, most / 8);
  const std::size_t left = most > open + reserve ? most - open - reserve : 0;
  const std::size_t each = 1 + (opt_.download ? 1 : 0) + (opt_.serves_site ? 1 : 0);
  descriptor_budget_ = std::max<std::size_t>(1, left / each);
  budget_why_ = fmt::format(
      "this process may have {} open files (ulimit -n), {} were open when the node started and {} are kept for the "
      "rest of the run{}{}",
      most, open, reserve, opt_.download ? ", and each download takes two (its socket and its file)" : "",
      opt_.serves_site
          ? ", and a request to the site this run serves (settings.serve) holds both ends of its connection"
          : "");
  curl_multi_setopt(multi_, CURLMOPT_MAX_TOTAL_CONNECTIONS, static_cast<long>(descriptor_budget_));
}

// Whether a transfer that found no descriptor is asked for again: at once while others of the node
// are in flight (one of them will give its descriptor up), and every kLoneWait (`later`) while it is
// alone, for connect_timeout at most from the first time (`since`): idle connections may hold the
// descriptors (under cap_sockets()'s cap each new connection closes the oldest idle one first, one
// descriptor each time, and a name's lookup needs three or so: libcurl's socketpair, and what
// getaddrinfo() opens), or another node's transfers, or a store's files, which free them in time.
bool HttpLoop::asks_again(Clock::time_point& since, Clock::time_point now, bool& later) const {
  later = active_.empty();
  if (!later) {
    since = {};
    return true;
  }
  if (since == Clock::time_point{}) since = now;
  return now - since < opt_.connect_timeout;
}

// For kSocketCapFor, no more transfers than are in flight now (at least one), and no more
// connections: libcurl keeps idle connections open (MAXCONNECTS), to other hosts too, and each holds
// a descriptor. With CURLMOPT_MAX_TOTAL_CONNECTIONS a new connection closes the oldest idle one
// first; the cap on transfers keeps libcurl from queueing one for a connection. Said once a run.
void HttpLoop::cap_sockets(int socket_errno, Clock::time_point now) {
  socket_cap_ = std::max<std::size_t>(1, active_.size());
  socket_cap_until_ = now + kSocketCapFor;
  shortage_errno_ = socket_errno;
  curl_multi_setopt(multi_, CURLMOPT_MAX_TOTAL_CONNECTIONS, static_cast<long>(socket_cap_));
  if (told_no_socket_) return;
  told_no_socket_ = true;
  notice(
      fmt::format("no socket for a request: {}; requests wait for a free descriptor, so fewer run at a time "
                  "than max_in_flight and per_host allow: raise the limit for more",
                  out_of_descriptors(socket_errno)));
}

// Whether a transfer may start now, as far as descriptors go (wait_for_socket()): the cap holds for
// kSocketCapFor after the last transfer that found none, then the node tries its full width again.
bool HttpLoop::sockets_scarce(Clock::time_point now) {
  if (socket_cap_ != 0 && now >= socket_cap_until_) {
    socket_cap_ = 0;
    curl_multi_setopt(multi_, CURLMOPT_MAX_TOTAL_CONNECTIONS, static_cast<long>(descriptor_budget_));
  }
  const std::size_t cap = socket_cap_ != 0 ? socket_cap_ : descriptor_budget_;
  if (cap == 0 || active_.size() < cap) return false;
  if (socket_cap_ == 0 && !told_budget_) {
    told_budget_ = true;
    notice(fmt::format("at most {} requests at a time for the limit of open files: {}; raise the limit for more",
                       descriptor_budget_, budget_why_));
  }
  return true;
}

// What a finished transfer means for its job: a result, a retry, the next redirect hop, or an error.
void HttpLoop::conclude(Transfer& transfer, CURLcode code) {
  Transfer* t = &transfer;
  CURL* easy = t->easy;
  auto now = Clock::now();
  std::unique_ptr<Job> job = std::move(t->job);
  Host& host = hosts_[job->host];
  --host.in_flight;
  host.last_used = now;
  long status = 0;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
  HostStats& stats = stats_of(job->host, host);
  const bool no_socket = out_of_sockets(*t, code);  // no request was sent either
  if (t->refused_ip.empty() && !no_socket) {
    count_transfer(stats, easy, status, t->body.size() + (t->written - t->resumed_from));
  }
  if (status == 206 && t->resumed_from > 0 && !t->bad_range) status = 200;  // the rest of the file a 200 began

  if (t->wrong_type) return fail_content_type(std::move(job), host, status, easy);
  if (!t->refused_ip.empty()) {  // no request was sent: nothing is known about the host's health
    if (t->probe) host.breaker.on_probe_abandoned();
    std::string message = private_message(job->url, t->refused_ip);
    return fail(std::move(job), Reason::refused, 0, std::move(message));
  }
  // No descriptor for its socket, its name's lookup, or (download) its file, whose answer is then
  // dropped: asked for again when one is free; alone, a little later, for connect_timeout at most
  // (asks_again()).
  if (bool later = false; (no_socket || no_file_descriptor(*t, code)) && asks_again(job->lone_since, now, later)) {
    return wait_for_socket(std::move(job), host, t->socket_errno, t->probe, now, later);
  }
  job->lone_since = {};  // (a later shortage counts its own time)
  // download: the file could not be written (a full disk): not the host's fault, and not retried.
  if (!t->write_error.empty()) return fail(std::move(job), Reason::other, status, "download: " + t->write_error);
  // A resumed download the server cannot continue (a 206 from elsewhere in the file, or 416 Range Not
  // Satisfiable): its bytes are dropped and the file is asked for whole, at once.
  if (t->bad_range || (t->resumed_from > 0 && status == 416)) {
    breaker_succeeded(job->host, host);
    t->discard_file();
    return enqueue(std::move(job), true);
  }
  // The headers came and said a type not wanted, and the transfer ended before its body (libcurl
  // refuses a Content-Length beyond max_body at once): the type is the answer, not the size.
  if (code != CURLE_OK && unwanted_type(easy, opt_.content_types, opt_.ok_status))
    return fail_content_type(std::move(job), host, status, easy);
  // A body to be used whose length is a guess (an error's body is not used: its status stays the
  // answer). A HEAD's answer, a 204 and a 304 have no body (RFC 9112 6.3): their lengths frame nothing.
  std::string lengths;
  const bool bodiless = job->method == "HEAD" || status == 204 || status == 304;
  const bool ambiguous_length =
      code == CURLE_OK && !bodiless && opt_.ok_status.contains(status) && conflicting_lengths(easy, lengths);
  if (ambiguous_length) code = CURLE_WEIRD_SERVER_REPLY;
  if (code != CURLE_OK) {
    Reason reason = classify(code, t->too_large);
    // libcurl 7.88 refuses so a response whose first header line is folded (begins with a space or a
    // tab): it has no header before it to continue.
    const bool orphan_fold = code == CURLE_BAD_FUNCTION_ARGUMENT && status != 0;
    // And says "Out of memory" of a header line longer than its cap (100 KiB) after the status line:
    // a broken server, far likelier than memory running out.
    const bool giant_header = code == CURLE_OUT_OF_MEMORY && status != 0;
    // And ends a response whose headers pass 300 KiB in all as a failed receive (CVE-2023-38039's fix).
    constexpr std::string_view kHeadersTooLarge = "Too large response headers: ";
    const bool giant_headers = code == CURLE_RECV_ERROR && std::string_view(t->error).starts_with(kHeadersTooLarge);
    if (orphan_fold || giant_header || giant_headers) reason = Reason::bad_response;
    // No descriptor for a socket while no other transfer holds one (something else in the process
    // does): nothing is known about the host (its breaker and its adaptive allowance stay as they
    // are); a connect failure all the same, retried as one.
    if (is_host_failure(reason) && !no_socket) {
      breaker_failed(job->host, host, now, reason_name(reason));
    } else if (t->probe) {
      host.breaker.on_probe_abandoned();
    }
    if ((reason == Reason::timeout || reason == Reason::connect || reason == Reason::reset) && !no_socket) {
      adapt(job->host, host, reason_name(reason), t->started, now);
    }
    std::string detail = t->error[0] ? std::string(t->error) : std::string(curl_easy_strerror(code));
    if (orphan_fold) detail = "a folded header line (one that begins with a space or a tab) continues no header";
    if (giant_header) detail = "a response header line longer than libcurl's limit of 100 KiB (or memory ran out)";
    if (giant_headers) {  // libcurl's words end "N > 307200" (bytes)
      detail = fmt::format("response headers larger than libcurl's limit of 300 KiB ({} bytes)",
                           std::string_view(t->error).substr(kHeadersTooLarge.size()));
    }
    if (ambiguous_length)
      detail = fmt::format("conflicting Content-Length headers ({}): the body's length is unknown", lengths);
    if (no_socket) {
      detail = fmt::format("no socket: {}; lower max_in_flight or per_host, or raise the limit",
                           out_of_descriptors(t->socket_errno));
    }
    if (reason == Reason::too_large) detail = fmt::format("body larger than max_body ({} bytes)", opt_.max_body);
    if (reason == Reason::invalid) {  // a URL libcurl refused only now (its host key came from the cache)
      std::string message = fmt::format("invalid URL '{}': {}", job->url, detail);  // before job is moved
      return fail(std::move(job), reason, 0, std::move(message));
    }
    nanoseconds wait = opt_.retry.backoff(job->attempts + 1, rng_);
    if (files_ && !ambiguous_length) keep_partial(*t, *job);  // (bytes framed by a guess are not kept)
    long request_bytes = 0;  // of this attempt (libcurl counts from each transfer's start)
    curl_easy_getinfo(easy, CURLINFO_REQUEST_SIZE, &request_bytes);
    return retry_or_fail(std::move(job), reason, ambiguous_length ? status : 0,
                         fmt::format("{}: {}", reason_name(reason), detail), wait, false, request_bytes > 0);
  }

  // The API's quota: no request of the host before its window renews.
  std::optional<nanoseconds> quota_wait;
  if (opt_.rate_limit_headers && (quota_wait = rate_limit_wait(easy, unix_now()))) {
    *quota_wait = std::min(*quota_wait, opt_.retry.max);
    host.paused_until = std::max(host.paused_until, now + *quota_wait);
    if (!host.quota_noticed) {
      host.quota_noticed = true;
      notice(
          fmt::format("host {}: its rate limit is used up (its rate-limit headers say so): its requests wait "
                      "{:.1f}s for the reset (rate_limit_headers; at most retries.max)",
                      job->host, std::chrono::duration<double>(*quota_wait).count()));
    }
  }
  // A 429 of a used-up quota is the API keeping its rules, not a failing host: its breaker stays closed
  // (a burst of them would open it, and fail the retries that wait for the reset).
  if (status >= 500 || (status == 429 && !quota_wait)) {
    breaker_failed(job->host, host, now, fmt::format("HTTP {}", status));
  } else {
    breaker_succeeded(job->host, host);
  }
  if (opt_.adaptive) {
    const bool overload = status == 429 || status == 502 || status == 503 || status == 504;
    adapt(job->host, host, overload ? fmt::format("HTTP {}", status) : std::string(), t->started, now);
  }
  if (status == 304 && job->revalidating) return revalidated(std::move(job), *t, stats);
  // oauth2: a 401 to the token says it is no longer good (revoked, or expired before its time). A new
  // one is asked for, unless one came since the request went out, and the request goes again with
  // it, once: a second 401 is the answer.
  if (status == 401 && job->token != 0 && !job->token_renewed) {
    job->token_renewed = true;
    SharedToken& s = *token_.shared;
    std::lock_guard lock(s.mutex);
    if (job->token == s.generation && s.expires_at > now) s.expires_at = s.refresh_at = now;
    return enqueue(std::move(job), true);
  }

  char* location = nullptr;
  curl_easy_getinfo(easy, CURLINFO_REDIRECT_URL, &location);
  if (is_redirect(status) && location && opt_.max_redirects > 0) {
    std::string target = redirect_url(easy, location, job->url);  // absolute; a host beyond ASCII in punycode
    if (job->redirects >= opt_.max_redirects) {
      return fail(std::move(job), Reason::redirects, status,
                  fmt::format("redirects: more than max_redirects ({}), last to '{}'", opt_.max_redirects, target));
    }
    std::string error;
    std::string key;
    if (!host_key(target, key, error)) {
      std::string message =  // before job is moved: the order of a call's arguments is unspecified
          fmt::format("refused redirect from '{}' to '{}': only http and https URLs are allowed", job->url, target);
      return fail(std::move(job), Reason::refused, status, std::move(message));
    }
    if (key != job->host) job->crossed = true;
    if (job->crossed || host_headers_) {
      // The next hop's headers: without the node's credentials once the origin changed, with the
      // `hosts` entry's headers of the host it goes to (those of the last host stay behind).
      std::string header_error;
      if (!render_headers(job->record, key, !job->crossed, job->headers, header_error)) {
        return fail(std::move(job), Reason::invalid, status, std::move(header_error));
      }
    }
    ++job->redirects;
    job->attempts = 0;  // attempts count per hop; a redirect is not a retry
    // 303 See Other: a GET of the other resource (a HEAD stays a HEAD, RFC 9110 15.4.4); 301 and
    // 302 turn a POST into a GET, as browsers and libcurl do (RFC 9110 15.4.2-3).
    if ((status == 303 && job->method != "HEAD") || ((status == 301 || status == 302) && job->method == "POST")) {
      job->method = "GET";
      job->body.reset();
    }
    if (job->crossed || host_headers_) add_idempotency_key(*job, job->record);  // headers rendered again
    job->url = std::move(target);
    job->host = std::move(key);
    job->path.clear();
    return enqueue(std::move(job), true);
  }

  // 206 Partial Content to a request for the whole resource (no Range of the node's, not a resumed
  // download): the body is only a piece of it, and would pass for all of it (a download's file
  // beginning mid-way).
  if (status == 206 && t->resumed_from == 0 && !has_header(job->headers, "range")) {
    const auto range = response_header(easy, "Content-Range");
    return fail(std::move(job), Reason::bad_response, status,
                fmt::format("bad_response: 206 Partial Content{} to a request for the whole resource",
                            range ? " (Content-Range: " + *range + ")" : ""));
  }
  if (!opt_.ok_status.contains(status)) {
    nanoseconds wait = opt_.retry.backoff(job->attempts + 1, rng_);
    if (auto after = retry_after(easy, status)) {
      wait = *after;
      host.paused_until = std::max(host.paused_until, now + wait);  // the whole host waits
    }
    const bool rate_limited = quota_wait && (status == 403 || status == 429);
    if (rate_limited) wait = *quota_wait;
    std::string message =
        (rate_limited ? fmt::format("HTTP {} (rate limit used up)", status) : fmt::format("HTTP {}", status)) +
        (is_redirect(status) && !location && opt_.max_redirects > 0 ? " (a redirect without a Location header)" : "") +
        error_excerpt(easy, t->body);
    job->record.set("final_url", Value(effective_url(easy, job->url)));
    if (!opt_.retry.retries_status(status) && !rate_limited) {
      const bool kept = !job->cache_key.empty() && opt_.cache->keep_status.contains(status);
      Bytes body = kept || opt_.error_body ? bodies_->share(std::move(t->body)) : Bytes();
      if (kept) {
        char* type = nullptr;
        curl_easy_getinfo(easy, CURLINFO_CONTENT_TYPE, &type);
        queue_store(*job, easy, body, status, type, job->record.get("final_url")->as_string()->c_str(), unix_now());
      }
      set_response_fields(job->record, easy, std::move(body));
      return fail(std::move(job), Reason::http_status, status, std::move(message));
    }
    if (files_) keep_partial(*t, *job);
    if (retry(job, Reason::http_status, status, message, wait, rate_limited)) return;
    // The last answer's, not an earlier attempt's.
    set_response_fields(job->record, easy, opt_.error_body ? bodies_->share(std::move(t->body)) : Bytes());
    return fail(std::move(job), Reason::http_status, status, std::move(message));
  }
  // A response with no body at all (HEAD, 204, an empty file) never reached on_body's check.
  if (unwanted_type(easy, opt_.content_types, opt_.ok_status))
    return fail_content_type(std::move(job), host, status, easy);
  succeed(std::move(job), *t, stats);
}

// A response of a media type outside content_types: the host answered (its breaker closes), the
// record fails with reason content_type, and it is not retried.
void HttpLoop::fail_content_type(std::unique_ptr<Job> job, Host& host, long status, CURL* easy) {
  breaker_succeeded(job->host, host);
  char* type = nullptr;
  curl_easy_getinfo(easy, CURLINFO_CONTENT_TYPE, &type);
  job->record.set("final_url", Value(effective_url(easy, job->url)));
  std::string message =
      fmt::format("content_type: '{}' is not one of content_types ({})", type ? type : "", opt_.content_types.text());
  set_response_fields(job->record, easy);
  fail(std::move(job), Reason::content_type, status, std::move(message));
}

std::optional<nanoseconds> HttpLoop::retry_after(CURL* easy, long status) const {
  if (status != 429 && status != 503) return std::nullopt;
  auto header = response_header(easy, "Retry-After");
  auto after = header ? parse_retry_after(*header, std::time(nullptr)) : std::nullopt;
  if (!after) return std::nullopt;
  return std::min(*after, opt_.retry.max);
}

void HttpLoop::retry_or_fail(std::unique_ptr<Job> job, Reason reason, long status, std::string message,
                             nanoseconds wait, bool rate_limited, bool sent) {
  if (!retry(job, reason, status, message, wait, rate_limited, sent))
    fail(std::move(job), reason, status, std::move(message));
}

bool HttpLoop::retry(std::unique_ptr<Job>& job, Reason reason, long status, std::string& message, nanoseconds wait,
                     bool rate_limited, bool sent) {
  bool retryable = rate_limited || (reason == Reason::http_status ? opt_.retry.retries_status(status)
                                                                  : opt_.retry.retries_reason(reason));
  if (retryable && !rate_limited && !opt_.retry.may_repeat(job->method, reason, status, sent)) {
    retryable = false;
    if (job->attempts < opt_.retry.attempts) {
      message += fmt::format(
          " (a {} the server may have acted on is not retried; retries.idempotency_key, for an API "
          "that takes one, or retries.non_idempotent: true retries it)",
          job->method);
    }
  }
  if (retryable && job->attempts < opt_.retry.attempts && !cancel_.load()) {
    Host& host = hosts_[job->host];
    ++host.retries_scheduled;  // the host stays known while its retry waits
    ++stats_of(job->host, host).retries;
    timers_.emplace(Clock::now() + wait, Timer{std::move(job), {}});
    return true;
  }
  return false;
}

// A failure's answer (an HTTP status outside ok_status, a content type outside content_types): the
// record gets its content_type and keep_headers as a success would, an API's request id say, and
// with error_body `body` (its body; none for a content type refused at its first bytes).
void HttpLoop::set_response_fields(Record& r, CURL* easy, Bytes body) const {
  char* type = nullptr;
  curl_easy_getinfo(easy, CURLINFO_CONTENT_TYPE, &type);
  r.set("content_type", type ? Value(std::string(type)) : Value());
  for (std::size_t i = 0; i < keep_fields_.size(); ++i) {
    auto value = response_header(easy, opt_.keep_headers[i].c_str());
    r.set(keep_fields_[i], value ? Value(std::move(*value)) : Value());
  }
  if (opt_.error_body) r.set(opt_.body_field, Value(std::move(body)));
}

// download: keeps what a failed attempt wrote for the next attempt to resume, when the server can
// continue it: a GET whose bytes were written as sent (no Content-Encoding) and whose version is
// named by a strong ETag or a Last-Modified date (If-Range).
void HttpLoop::keep_partial(Transfer& t, Job& job) {
  if (t.fd < 0 || t.written == 0 || t.validator.empty()) return;  // see file_version()
  auto p = std::make_unique<PartialDownload>();
  p->fd = std::exchange(t.fd, -1);
  p->temp = std::exchange(t.temp, std::string());
  p->size = p->hashed = t.written;
  p->validator = std::move(t.validator);
  p->resumable = std::exchange(t.resumable, false);
  p->earlier_run = t.earlier_run;
  p->digest = std::exchange(t.digest, nullptr);
  job.partial = std::move(p);
}

// Puts fetch's fields into `r`: a record usually has none of them yet, and then they are
// appended without a lookup each.
HttpLoop::FieldSetter HttpLoop::field_setter(Record& r) const {
  const bool fresh = !output_fields_.empty() &&
                     std::none_of(r.fields().begin(), r.fields().end(),
                                  [this](const Record::Field& f) { return output_fields_.contains(f.first); });
  r.reserve(r.fields().size() + 13 + keep_fields_.size());
  return FieldSetter{r, fresh};
}

void HttpLoop::succeed(std::unique_ptr<Job> job, Transfer& t, HostStats& stats) {
  CURL* e = t.easy;
  long status = 0;
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
  std::string file;
  if (t.files) {
    // A resumed download answered with a whole file that has no body (on_body never ran to start
    // it over): the earlier bytes are not part of it.
    if (t.resumed_from > 0 && status != 206 && !restart_file(t))
      return fail(std::move(job), Reason::other, status, "download: " + t.write_error);
    std::string error;
    Reason reason = Reason::other;
    file = place_file(t, *job, error, reason);
    if (file.empty()) return fail(std::move(job), reason, status, "download: " + error);
  }
  if (status == 206 && t.resumed_from > 0) {  // the rest of a file a 200 began: the whole file
    status = 200;
    if (t.earlier_run) {
      ++continued_files_;
      continued_bytes_ += t.resumed_from;
    }
  }
  ++stats.ok;
  char* content_type = nullptr;
  char* effective = nullptr;
  curl_off_t dns = 0, connect = 0, ttfb = 0, total = 0;
  curl_easy_getinfo(e, CURLINFO_CONTENT_TYPE, &content_type);
  curl_easy_getinfo(e, CURLINFO_EFFECTIVE_URL, &effective);
  curl_easy_getinfo(e, CURLINFO_NAMELOOKUP_TIME_T, &dns);
  curl_easy_getinfo(e, CURLINFO_CONNECT_TIME_T, &connect);
  curl_easy_getinfo(e, CURLINFO_STARTTRANSFER_TIME_T, &ttfb);
  curl_easy_getinfo(e, CURLINFO_TOTAL_TIME_T, &total);
  const double fetched_at = unix_now();
  Record& r = job->record;
  const auto put = field_setter(r);
  put("final_url", Value(effective && effective != job->url ? std::string(effective) : std::move(job->url)));
  put("status", Value(static_cast<std::int64_t>(status)));
  put("content_type", content_type ? Value(std::string(content_type)) : Value());
  for (std::size_t i = 0; i < keep_fields_.size(); ++i) {
    auto value = response_header(e, opt_.keep_headers[i].c_str());
    put(keep_fields_[i], value ? Value(std::move(*value)) : Value());
  }
  if (t.files) {
    put("file", Value(std::move(file)));
    put("file_size", Value(static_cast<std::int64_t>(t.written)));
    if (opt_.download->sha256) put("sha256", t.digest ? Value(hex_digest(t.digest)) : Value());
  } else {
    Bytes body = bodies_->share(std::move(t.body));
    if (!job->cache_key.empty()) queue_store(*job, e, body, status, content_type, effective, fetched_at);
    put(opt_.body_field, Value(std::move(body)));
  }
  put("time_dns", Value(static_cast<double>(dns) / 1e6));
  put("time_connect", Value(static_cast<double>(connect) / 1e6));
  put("time_ttfb", Value(static_cast<double>(ttfb) / 1e6));
  put("time_total", Value(static_cast<double>(total) / 1e6));
  put("attempts", Value(static_cast<std::int64_t>(job->attempts)));
  if (job->proxy >= 0) put("proxy", Value(proxies_[static_cast<std::size_t>(job->proxy)].shown));
  if (opt_.cache) put("cached", Value(false));
  put("fetched_at", Value(fetched_at));
  r.meta.attempt = job->attempts;
  hold_result();
  out_->complete(std::move(r));
}

void HttpLoop::keep_for_later(Job& job) {
  if (job.partial) job.partial->keep_for_later();
}

void HttpLoop::set_aside(Job& job) {
  keep_for_later(job);
  job.record.mark_unfinished();
}

void HttpLoop::fail(std::unique_ptr<Job> job, Reason reason, long status, std::string message) {
  if (job->stale && opt_.cache->stale_if_error &&
      (is_host_failure(reason) || reason == Reason::circuit_open ||
       (reason == Reason::http_status && (status >= 500 || status == 429)))) {
    cache_stale_served_.fetch_add(1, std::memory_order_relaxed);
    CachedResponse found = std::move(*job->stale);
    hold_result();
    return complete_from_cache(std::move(job), std::move(found), nullptr);
  }
  // Not done (cancelled), or given up on while the server failed (no answer, a reset, a 5xx): a
  // later run continues a resumable file. Other endings (404, too large) remove it.
  if (reason == Reason::cancelled || reason == Reason::circuit_open || is_host_failure(reason) ||
      (reason == Reason::http_status && (status >= 500 || status == 429)))
    keep_for_later(*job);
  if (!job->host.empty()) ++stats_of(job->host).failed_by[static_cast<int>(reason)];
  Record& r = job->record;
  r.set("status", status ? Value(static_cast<std::int64_t>(status)) : Value());
  r.set("reason", Value(std::string(reason_name(reason))));
  r.set("attempts", Value(static_cast<std::int64_t>(job->attempts)));
  if (job->proxy >= 0) r.set("proxy", Value(proxies_[static_cast<std::size_t>(job->proxy)].shown));
  r.meta.attempt = job->attempts;
  if (job->attempts > 1) message += fmt::format(" ({})", attempts_text(job->attempts));
  hold_result();
  out_->fail(std::move(r), std::move(message));
}

// Ends every job that has not started a transfer: they leave without a result, counted by the
// engine as dropped (a resumed run fetches them). Robots.txt fetches under way finish, and the jobs
// they held back end with them here on a later turn. A request for oauth2's token stops: no job
// will start with it (one that gets 401 ends here too).
void HttpLoop::drop_unstarted() {
  std::size_t dropped = 0;
  for (auto it = active_.begin(); it != active_.end();) {
    if (!it->second->token) {
      ++it;
      continue;
    }
    curl_multi_remove_handle(multi_, it->first);
    recycle(std::move(it->second));
    it = active_.erase(it);
    give_up_token_request();
  }
  for (auto* entry : queued_hosts_) {
    Host& host = entry->second;
    dropped += host.waiting.size();
    for (auto& job : host.waiting) set_aside(*job);
    host.waiting.clear();  // their records, and so their permits, go here
    host.queued = false;
  }
  queued_hosts_.clear();
  for (auto& [due, timer] : timers_) {  // retries waiting for their backoff
    if (timer.robots) {                 // nothing waits for that robots.txt any more
      if (auto it = hosts_.find(timer.host); it != hosts_.end()) it->second.robots = Host::Robots::unknown;
      timer.host.clear();
      continue;
    }
    if (timer.token) give_up_token_request();  // erased below: no job of this loop waits for a token any more
    if (timer.endpoint_keys) endpoint_keys_.asking = false;
    if (!timer.job) continue;
    if (auto it = hosts_.find(timer.job->host); it != hosts_.end()) --it->second.retries_scheduled;
    set_aside(*timer.job);
    timer.job.reset();
    ++dropped;
  }
  for (auto& job : hashing_) set_aside(*job);
  dropped += hashing_.size();
  hashing_.clear();
  dropped += set_aside_downloads();
  std::erase_if(timers_, [](const auto& entry) { return !entry.second.job && entry.second.host.empty(); });
  if (dropped > 0) out_->discard(dropped);
}

// A graceful stop does not wait for downloads that a later run can continue (a large file can take
// many minutes): a transfer writing a resumable file with bytes in it stops, the file stays
// (keep_for_later), and its record ends like one that has not started. Other transfers finish.
std::size_t HttpLoop::set_aside_downloads() {
  std::size_t n = 0;
  for (auto it = active_.begin(); it != active_.end();) {
    Transfer& t = *it->second;
    if (!t.job || !t.resumable || t.fd < 0 || t.written == 0 || t.validator.empty()) {
      ++it;
      continue;
    }
    curl_multi_remove_handle(multi_, it->first);
    Host& host = hosts_[t.job->host];
    --host.in_flight;
    if (t.probe) host.breaker.on_probe_abandoned();
    t.keep_for_later();
    std::unique_ptr<Transfer> owned = std::move(it->second);
    it = active_.erase(it);
    owned->job->record.mark_unfinished();
    owned->job.reset();  // its record, and so its permit, go here
    recycle(std::move(owned));
    ++n;
  }
  return n;
}

void HttpLoop::fail_waiting(Reason reason, const std::string& message) {
  for (auto* entry : queued_hosts_) {
    Host& host = entry->second;
    while (!host.waiting.empty()) {
      auto job = std::move(host.waiting.front());
      host.waiting.pop_front();
      fail(std::move(job), reason, 0, message);
    }
    host.queued = false;
  }
  queued_hosts_.clear();
}

void HttpLoop::abort_everything() {
  aborted_ = true;
  const std::string message = "cancelled: the run was stopped";
  for (auto& [easy, t] : active_) {
    curl_multi_remove_handle(multi_, easy);
    if (t->job) {  // else a robots.txt fetch
      Host& host = hosts_[t->job->host];
      --host.in_flight;
      if (t->probe) host.breaker.on_probe_abandoned();
      fail(std::move(t->job), Reason::cancelled, 0, message);
    }
    t->keep_for_later();
    recycle(std::move(t));
  }
  active_.clear();
  fail_waiting(Reason::cancelled, message);
  for (auto& [due, timer] : timers_) {
    if (timer.job) fail(std::move(timer.job), Reason::cancelled, 0, message);
  }
  timers_.clear();
  for (auto& job : hashing_) fail(std::move(job), Reason::cancelled, 0, message);
  hashing_.clear();
  if (opt_.oauth2) give_up_token_request();  // (its transfer or its backoff's timer went above)
}

}  // namespace sluice::fetch
