#include "fixture_server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <httplib.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <regex>
#include <set>
#include <stdexcept>
#include <thread>

#include "growing_pool.hpp"

namespace sluice::fixture {
namespace {

std::string gzip(const std::string& data, std::size_t repeat = 1) {
  z_stream z{};
  deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY);
  std::string out;
  char buffer[1 << 16];
  for (std::size_t i = 0; i < repeat; ++i) {
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    z.avail_in = static_cast<uInt>(data.size());
    int flush = i + 1 == repeat ? Z_FINISH : Z_NO_FLUSH;
    do {
      z.next_out = reinterpret_cast<Bytef*>(buffer);
      z.avail_out = sizeof buffer;
      deflate(&z, flush);
      out.append(buffer, sizeof buffer - z.avail_out);
    } while (z.avail_out == 0);
  }
  deflateEnd(&z);
  return out;
}

// Files up to this size are compressed when the client accepts it (cpp-httplib's default); larger
// ones are sent as they are.
constexpr std::size_t kCompressedUpTo = 256 << 10;

// The /gzip-bomb body, made once per process on its first request: compressing 64 MiB takes about
// 200 ms of CPU, which every server start (each test, each `sluice run` with settings.serve) paid.
const std::string& gzip_bomb() {
  static const std::string bomb = gzip(std::string(1 << 20, '\0'), 64);
  return bomb;
}

// Base64 (or base64url) `text` decoded, its padding given or not; "" if it is not base64.
std::string base64_decode(std::string text) {
  for (char& c : text) c = c == '-' ? '+' : c == '_' ? '/' : c;
  text.append(text.size() % 4 == 0 ? 0 : 4 - text.size() % 4, '=');
  const std::size_t padding = text.size() - text.find_last_not_of('=') - 1;
  std::string out(text.size(), '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
  out.resize(n > 0 && static_cast<std::size_t>(n) >= padding ? static_cast<std::size_t>(n) - padding : 0);
  return out;
}

// The string or number of `name` in the flat JSON object `json` ("" when it has none).
std::string claim(const std::string& json, const std::string& name) {
  std::smatch m;
  if (std::regex_search(json, m, std::regex("\"" + name + R"re(":\s*("([^"\\]*)"|(-?[0-9]+)))re"))) {
    return m[2].matched ? m[2].str() : m[3].str();
  }
  return "";
}

// Base64 of `size` bytes, padded.
std::string base64(const unsigned char* bytes, std::size_t size) {
  std::string out((size + 2) / 3 * 4 + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), bytes, static_cast<int>(size));
  out.resize(static_cast<std::size_t>(std::max(n, 0)));
  return out;
}

std::string base64url(const unsigned char* bytes, std::size_t size) {
  std::string out = base64(bytes, size);
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) c = c == '+' ? '-' : c == '/' ? '_' : c;
  return out;
}

// The public key that verifies an assertion: the PEM public key in `key_file`, or with `cert_file`
// the key of that PEM certificate, which the assertion's header must name by its thumbprints, as
// Microsoft Entra ID finds a client's registered certificate (x5t: SHA-1, x5t#S256: SHA-256, both
// base64url, RFC 7515 4.1.7-8). Null and `error` otherwise.
EVP_PKEY* verifying_key(const std::string& header, const std::string& key_file, const std::string& cert_file,
                        std::string& error) {
  std::FILE* file = std::fopen((cert_file.empty() ? key_file : cert_file).c_str(), "r");
  if (!file) return nullptr;
  EVP_PKEY* key = nullptr;
  if (cert_file.empty()) {
    key = PEM_read_PUBKEY(file, nullptr, nullptr, nullptr);
  } else if (X509* cert = PEM_read_X509(file, nullptr, nullptr, nullptr)) {
    unsigned char sha1[EVP_MAX_MD_SIZE], sha256[EVP_MAX_MD_SIZE];
    unsigned int sha1_size = 0, sha256_size = 0;
    if (X509_digest(cert, EVP_sha1(), sha1, &sha1_size) == 1 &&
        X509_digest(cert, EVP_sha256(), sha256, &sha256_size) == 1 &&
        claim(header, "x5t") == base64url(sha1, sha1_size) &&
        claim(header, "x5t#S256") == base64url(sha256, sha256_size)) {
      key = X509_get_pubkey(cert);
    } else {
      error = "The assertion names no registered certificate (x5t)";
    }
    X509_free(cert);
  }
  std::fclose(file);
  return key;
}

// RFC 7523's assertion checked with the RSA public key in PEM file `key_file`, or the one of the
// certificate in `cert_file` (verifying_key()): its claims (a JSON object's text) when the
// signature is RS256 and good, else nullopt and `error`.
std::optional<std::string> verified_jwt(const std::string& jwt, const std::string& key_file,
                                        const std::string& cert_file, std::string& error) {
  const auto first = jwt.find('.'), second = jwt.rfind('.');
  if (first == std::string::npos || first == second) {
    error = "Not a JWT";
    return std::nullopt;
  }
  const std::string header = base64_decode(jwt.substr(0, first));
  const std::string claims = base64_decode(jwt.substr(first + 1, second - first - 1));
  const std::string signature = base64_decode(jwt.substr(second + 1));
  if (header.find(R"("alg":"RS256")") == std::string::npos) {
    error = "Only RS256 is accepted";
    return std::nullopt;
  }
  EVP_PKEY* key = verifying_key(header, key_file, cert_file, error);
  if (!key && !error.empty()) return std::nullopt;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const bool good = key && ctx && EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, key) == 1 &&
                    EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                                     reinterpret_cast<const unsigned char*>(jwt.data()), second) == 1;
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(key);
  if (!good) {
    error = "Invalid JWT Signature";
    return std::nullopt;
  }
  return claims;
}

std::string hex(const unsigned char* bytes, std::size_t size) {
  std::string out;
  for (std::size_t i = 0; i < size; ++i) out += fmt::format("{:02x}", bytes[i]);
  return out;
}

std::string sha256_hex(const std::string& text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(text.data(), text.size(), digest, &size, EVP_sha256(), nullptr);
  return hex(digest, size);
}

// The HMAC of `text` under `key` with hash `md`, raw bytes.
std::string hmac(const EVP_MD* md, const std::string& key, const std::string& text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  HMAC(md, key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(text.data()), text.size(),
       digest, &size);
  return std::string(reinterpret_cast<const char*>(digest), size);
}

std::string hmac_sha256(const std::string& key, const std::string& text) {
  return hmac(EVP_sha256(), key, text);
}

// MD4 (RFC 1320), which NTLM's password hash is and OpenSSL 3 keeps out of its default provider.
std::string md4(const std::string& message) {
  auto rotl = [](std::uint32_t x, int n) { return (x << n) | (x >> (32 - n)); };
  std::string m = message;
  const std::uint64_t bits = static_cast<std::uint64_t>(message.size()) * 8;
  m += '\x80';
  while (m.size() % 64 != 56) m += '\0';
  for (int i = 0; i < 8; ++i) m += static_cast<char>(bits >> (8 * i));
  std::uint32_t h[4] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476};
  for (std::size_t block = 0; block < m.size(); block += 64) {
    std::uint32_t x[16];
    for (int i = 0; i < 16; ++i) {
      const auto* b = reinterpret_cast<const unsigned char*>(m.data() + block + 4 * i);
      x[i] = b[0] | b[1] << 8 | b[2] << 16 | static_cast<std::uint32_t>(b[3]) << 24;
    }
    std::uint32_t a = h[0], b = h[1], c = h[2], d = h[3];
    auto f = [](std::uint32_t p, std::uint32_t q, std::uint32_t r) { return (p & q) | (~p & r); };
    auto g = [](std::uint32_t p, std::uint32_t q, std::uint32_t r) { return (p & q) | (p & r) | (q & r); };
    auto hh = [](std::uint32_t p, std::uint32_t q, std::uint32_t r) { return p ^ q ^ r; };
    for (int i = 0; i < 16; ++i) {  // round 1
      static constexpr int s[4] = {3, 7, 11, 19};
      const std::uint32_t t = rotl(a + f(b, c, d) + x[i], s[i % 4]);
      a = d, d = c, c = b, b = t;
    }
    for (int i = 0; i < 16; ++i) {  // round 2
      static constexpr int s[4] = {3, 5, 9, 13};
      const std::uint32_t t = rotl(a + g(b, c, d) + x[(i % 4) * 4 + i / 4] + 0x5a827999, s[i % 4]);
      a = d, d = c, c = b, b = t;
    }
    for (int i = 0; i < 16; ++i) {  // round 3
      static constexpr int s[4] = {3, 9, 11, 15};
      static constexpr int order[16] = {0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15};
      const std::uint32_t t = rotl(a + hh(b, c, d) + x[order[i]] + 0x6ed9eba1, s[i % 4]);
      a = d, d = c, c = b, b = t;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d;
  }
  std::string out;
  for (std::uint32_t word : h) {
    for (int i = 0; i < 4; ++i) out += static_cast<char>(word >> (8 * i));
  }
  return out;
}

// ASCII text as NTLM's UTF-16LE (each byte widened, as libcurl does), and back ("" when a character
// is beyond one byte).
std::string utf16le(const std::string& ascii) {
  std::string out;
  for (char c : ascii) out += {c, '\0'};
  return out;
}
std::string from_utf16le(const std::string& wide) {
  std::string out;
  for (std::size_t i = 0; i + 1 < wide.size(); i += 2) {
    if (wide[i + 1] != '\0') return "";
    out += wide[i];
  }
  return out;
}

std::string lower_case(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

std::string upper(std::string text) {
  for (char& c : text) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return text;
}

// AWS Signature Version 4's URI encoding: only A-Z a-z 0-9 - _ . ~ left as they are.
std::string aws_encode(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

// AWS Signature Version 4's canonical query string of a raw query: each name and value
// percent-decoded, then encoded again with only A-Z a-z 0-9 - _ . ~ left as they are, sorted by name,
// then value, joined by '&' (a name without '=' gets an empty value).
std::string aws_canonical_query(const std::string& raw) {
  const auto encode = aws_encode;
  std::vector<std::pair<std::string, std::string>> params;
  std::size_t at = 0;
  while (at <= raw.size() && !raw.empty()) {
    const std::size_t end = std::min(raw.find('&', at), raw.size());
    const std::string part = raw.substr(at, end - at);
    if (!part.empty()) {
      const std::size_t eq = part.find('=');
      params.emplace_back(
          encode(httplib::detail::decode_url(part.substr(0, eq), false)),
          eq == std::string::npos ? "" : encode(httplib::detail::decode_url(part.substr(eq + 1), false)));
    }
    at = end + 1;
  }
  std::sort(params.begin(), params.end());
  std::string out;
  for (const auto& [name, value] : params) out += (out.empty() ? "" : "&") + name + '=' + value;
  return out;
}

// AWS Signature Version 4's canonical URI of a request's raw path, as AWS computes it: for S3, each
// segment percent-decoded and encoded again (only A-Z a-z 0-9 - _ . ~ left); for every other service
// the path as it came encoded once more ("%3A" is "%253A", ':' is "%3A"), its empty and dot segments
// left out.
std::string aws_canonical_path(const std::string& raw, bool s3) {
  std::vector<std::string> segments;
  for (std::size_t at = 1; at <= raw.size();) {
    const std::size_t slash = std::min(raw.find('/', at), raw.size());
    segments.push_back(raw.substr(at, slash - at));
    at = slash + 1;
  }
  std::string out;
  if (s3) {
    for (const auto& segment : segments) out += '/' + aws_encode(httplib::detail::decode_url(segment, false));
    return out.empty() ? "/" : out;
  }
  std::vector<std::string> kept;
  for (const auto& segment : segments) {
    if (segment == "..") {
      if (!kept.empty()) kept.pop_back();
    } else if (!segment.empty() && segment != ".") {
      kept.push_back(segment);
    }
  }
  for (const auto& segment : kept) out += '/' + aws_encode(segment);
  if (out.empty() || (!kept.empty() && raw.ends_with('/'))) out += '/';
  return out;
}

// The client certificate a TLS request came with (client_certs): its common name and its SHA-256
// in hex (RFC 8705 3.1's thumbprint, which binds a token to it); both "" without one.
struct PeerCertificate {
  std::string common_name, thumbprint;
};
PeerCertificate peer_certificate(const httplib::Request& req) {
  PeerCertificate out;
  X509* peer = req.ssl ? SSL_get1_peer_certificate(req.ssl) : nullptr;
  if (!peer) return out;
  char text[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, text, sizeof text);
  out.common_name = text;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (X509_digest(peer, EVP_sha256(), digest, &size) == 1) out.thumbprint = hex(digest, size);
  X509_free(peer);
  return out;
}

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\u{:04x}", c);
    } else {
      out += c;
    }
  }
  return out;
}

// Reads what is left of `fd` into `out`: 0, or the errno of the failure.
int read_rest(int fd, std::string& out) {
  char buffer[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n > 0) {
      out.append(buffer, static_cast<std::size_t>(n));
    } else if (n == 0) {
      return 0;
    } else if (errno != EINTR) {
      return errno;
    }
  }
}

// open(2) for reading, without waiting for a FIFO's writer. When the process has no descriptor free
// (the pipeline that serves its own site holds them in its requests), it tries again for up to
// kWaitForDescriptor: one frees up as soon as a transfer ends, and a page that exists is better
// sent late than answered 503.
constexpr std::chrono::milliseconds kWaitForDescriptor{2000};
int open_for_reading(const std::filesystem::path& p) {
  const auto deadline = std::chrono::steady_clock::now() + kWaitForDescriptor;
  auto pause = std::chrono::milliseconds(1);
  for (;;) {
    const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd >= 0 || (errno != EMFILE && errno != ENFILE) || std::chrono::steady_clock::now() + pause > deadline) {
      return fd;
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(100));
  }
}

// Reads the whole regular file at `p` into `out`: 0, or the errno of the failure (EACCES for what
// is not a regular file).
int read_whole(const std::filesystem::path& p, std::string& out) {
  const int fd = open_for_reading(p);
  if (fd < 0) return errno;
  struct stat st {};
  const int error = ::fstat(fd, &st) != 0 ? errno : !S_ISREG(st.st_mode) ? EACCES : read_rest(fd, out);
  ::close(fd);
  return error;
}

// A file of the served folder, open. One up to kCompressedUpTo is read whole (and sent compressed
// when the client asks); a larger one is sent from the file as the client reads it, a piece at a
// time, so that a folder may hold files larger than memory (read whole, two requests for a 2 GB file
// had taken 3 GB within 15 s; sent so, eight take 9 MB).
struct ServedFile {
  int fd = -1;
  std::uint64_t size = 0;
  std::string content;  // a small file's bytes
  std::string etag;     // strong: of the content for a small file, of its inode, mtime and size otherwise
  ServedFile() = default;
  ServedFile(const ServedFile&) = delete;
  ServedFile& operator=(const ServedFile&) = delete;
  ~ServedFile() {
    if (fd >= 0) ::close(fd);
  }

  // Opens `p` (once): 0, or the errno of the failure (EACCES for what is not a regular file: a FIFO,
  // a device).
  int open(const std::filesystem::path& p) {
    fd = open_for_reading(p);
    if (fd < 0) return errno;
    struct stat st {};
    if (::fstat(fd, &st) != 0) return errno;
    if (S_ISDIR(st.st_mode)) return EISDIR;
    if (!S_ISREG(st.st_mode)) return EACCES;
    size = static_cast<std::uint64_t>(st.st_size);
    if (size > kCompressedUpTo) {
      etag = fmt::format(
          "\"{:x}-{:x}-{:x}\"", st.st_ino,
          static_cast<std::uint64_t>(st.st_mtim.tv_sec) * 1000000000u + static_cast<std::uint64_t>(st.st_mtim.tv_nsec),
          size);
      return 0;
    }
    const int error = read_rest(fd, content);
    ::close(fd);
    fd = -1;
    std::uint64_t hash = 14695981039346656037ull;
    for (unsigned char c : content) hash = (hash ^ c) * 1099511628211ull;
    etag = fmt::format("\"{:016x}\"", hash);
    return error;
  }
};

// A file of the served folder that could not be read, as the answer says it: missing (404), not
// readable by this process (403), or, when the process has no descriptor or memory for it (the
// pipeline's own requests may hold them all), 503 with Retry-After: the page exists, ask again.
void answer_unreadable(int error, httplib::Response& res) {
  if (error == ENOENT || error == ENOTDIR || error == EISDIR) {
    res.status = 404;
    res.set_content("not found\n", "text/plain");
  } else if (error == EACCES || error == EPERM) {
    res.status = 403;
    res.set_content("forbidden\n", "text/plain");
  } else if (error == EMFILE || error == ENFILE || error == ENOMEM) {  // (after kWaitForDescriptor)
    res.status = 503;
    res.set_header("Retry-After", "1");
    res.set_content(fmt::format("busy: {}\n", std::strerror(error)), "text/plain");
  } else {
    res.status = 500;
    res.set_content(fmt::format("cannot read the file: {}\n", std::strerror(error)), "text/plain");
  }
}

// An OAuth 2.0 error answer (RFC 6749 5.2), as the token endpoints here give them.
void oauth_refusal(httplib::Response& res, int status, const char* error, const char* description) {
  res.status = status;
  res.set_content(fmt::format(R"({{"error":"{}","error_description":"{}"}})", error, description), "application/json");
}

std::string content_type_for(const std::filesystem::path& p) {
  std::string ext = p.extension().string();
  if (ext == ".html" || ext == ".htm") return "text/html; charset=utf-8";
  if (ext == ".json") return "application/json";
  if (ext == ".jsonl" || ext == ".ndjson") return "application/x-ndjson";
  if (ext == ".txt") return "text/plain; charset=utf-8";
  if (ext == ".xml") return "application/xml";
  if (ext == ".css") return "text/css";
  if (ext == ".png") return "image/png";
  if (ext == ".jpg" || ext == ".jpeg") return "image/jpeg";
  if (ext == ".gif") return "image/gif";
  if (ext == ".pdf") return "application/pdf";
  if (ext == ".gz") return "application/x-gzip";  // as Apache says; sent as it is, not decoded by clients
  return "application/octet-stream";
}

// AWS Signature Version 4, checked as AWS checks it: nullptr when `req` is signed with `key_id` and
// `secret` (and sends `token_of_key` as x-amz-security-token, signed, if it sends one), else the
// error code AWS answers (the path and query canonicalized here from the raw target, the path
// encoded twice unless the service is S3; the body's SHA-256 in x-amz-content-sha256).
const char* sigv4_refusal(const httplib::Request& req, const std::string& key_id, const std::string& secret,
                          const std::string& token_of_key) {
  std::smatch m;
  const std::string authorization = req.get_header_value("Authorization");
  static const std::regex re(R"(AWS4-HMAC-SHA256 Credential=([^/]+)/([0-9]{8})/([^/]+)/([^/]+)/aws4_request, ?)"
                             R"(SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64}))");
  if (!std::regex_match(authorization, m, re)) return "AccessDenied";
  const std::string key = m[1], date = m[2], region = m[3], service = m[4], signed_headers = m[5], signature = m[6];
  if (key != key_id) return "InvalidAccessKeyId";
  const std::string payload = req.get_header_value("x-amz-content-sha256");
  if (payload != sha256_hex(req.body)) return "XAmzContentSHA256Mismatch";
  const bool token = req.has_header("x-amz-security-token");
  if (token && (req.get_header_value("x-amz-security-token") != token_of_key ||
                (";" + signed_headers + ";").find(";x-amz-security-token;") == std::string::npos)) {
    return "InvalidToken";
  }
  // As S3 does: the Host and every x-amz-* header sent must be signed.
  const std::string signed_list = ";" + signed_headers + ";";
  if (signed_list.find(";host;") == std::string::npos) return "AccessDenied";
  for (const auto& [name, value] : req.headers) {
    const std::string lower = lower_case(name);
    if (lower.starts_with("x-amz-") && signed_list.find(";" + lower + ";") == std::string::npos) return "AccessDenied";
  }
  const std::size_t question = req.target.find('?');
  std::string canonical =
      req.method + '\n' + aws_canonical_path(req.target.substr(0, question), service.starts_with("s3")) + '\n' +
      aws_canonical_query(question == std::string::npos ? "" : req.target.substr(question + 1)) + '\n';
  for (std::size_t at = 0; at < signed_headers.size();) {
    const std::size_t end = std::min(signed_headers.find(';', at), signed_headers.size());
    const std::string name = signed_headers.substr(at, end - at);
    if (!req.has_header(name)) return "SignatureDoesNotMatch";
    canonical += name + ':' + req.get_header_value(name) + '\n';
    at = end + 1;
  }
  canonical += '\n' + signed_headers + '\n' + payload;
  const std::string amz_date = req.get_header_value("x-amz-date");
  const std::string scope = fmt::format("{}/{}/{}/aws4_request", date, region, service);
  const std::string to_sign = "AWS4-HMAC-SHA256\n" + amz_date + '\n' + scope + '\n' + sha256_hex(canonical);
  std::string signing = hmac_sha256("AWS4" + secret, date);
  for (const std::string& part : {region, service, std::string("aws4_request")}) signing = hmac_sha256(signing, part);
  const std::string expected = hmac_sha256(signing, to_sign);
  if (!amz_date.starts_with(date) ||
      signature != hex(reinterpret_cast<const unsigned char*>(expected.data()), expected.size())) {
    return "SignatureDoesNotMatch";
  }
  return nullptr;
}

}  // namespace

std::string random_bytes(std::size_t n, std::uint64_t seed) {
  std::string out(n, '\0');
  std::uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (char& c : out) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>(x >> 56);
  }
  return out;
}

namespace {

std::string http_date(std::time_t t) {
  char buf[64];
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

// Debian's libcpp-httplib is built with a listen backlog of 5: a burst of new connections (64 at the
// start of a run, or after timeouts) overflows it, SYNs are dropped and clients wait a full second
// for the retransmission. listen() on a listening socket only updates its backlog, so find ours and
// widen it.
void widen_backlog(int port) {
  for (int fd = 0; fd < 4096; ++fd) {
    int listening = 0;
    socklen_t len = sizeof listening;
    if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening) continue;
    sockaddr_in addr{};
    socklen_t alen = sizeof addr;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &alen) == 0 && addr.sin_family == AF_INET &&
        ntohs(addr.sin_port) == port) {
      ::listen(fd, 4096);
      return;
    }
  }
}

// What `write` (one of OpenSSL's PEM_write_bio_* calls) writes, as text.
template <typename Write>
std::string pem_text(Write write) {
  std::unique_ptr<BIO, decltype(&BIO_free)> mem(BIO_new(BIO_s_mem()), BIO_free);
  if (!mem || !write(mem.get())) throw std::runtime_error("fixture server: cannot write PEM");
  char* data = nullptr;
  long n = BIO_get_mem_data(mem.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

// A fresh key and a self-signed certificate for 127.0.0.1 (its own CA: a client trusts it by
// loading it as its CA file), valid for a day.
struct SelfSigned {
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key{nullptr, EVP_PKEY_free};
  std::unique_ptr<X509, decltype(&X509_free)> cert{nullptr, X509_free};
  std::string pem;  // the certificate
};

SelfSigned self_signed(const char* common_name = "127.0.0.1") {
  SelfSigned s;
  s.key.reset(EVP_EC_gen("P-256"));
  s.cert.reset(X509_new());
  if (!s.key || !s.cert) throw std::runtime_error("fixture server: cannot make a key and certificate");
  X509* x = s.cert.get();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), -60);
  X509_gmtime_adj(X509_getm_notAfter(x), 24 * 3600);
  X509_set_pubkey(x, s.key.get());
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(common_name), -1, -1, 0);
  X509_set_issuer_name(x, name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
  for (auto [nid, value] :
       {std::pair{NID_subject_alt_name, "IP:127.0.0.1"}, {NID_basic_constraints, "critical,CA:TRUE"}}) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    if (!ext || !X509_add_ext(x, ext, -1)) throw std::runtime_error("fixture server: cannot build the certificate");
    X509_EXTENSION_free(ext);
  }
  if (!X509_sign(x, s.key.get(), EVP_sha256())) throw std::runtime_error("fixture server: cannot sign the certificate");
  s.pem = pem_text([x](BIO* out) { return PEM_write_bio_X509(out, x); });
  return s;
}

// Writes `text` to a new file under the system's temporary directory and returns its path.
std::string temp_file(const std::string& text) {
  std::string path = (std::filesystem::temp_directory_path() / "sluice-fixture-ca-XXXXXX").string();
  int fd = ::mkstemp(path.data());
  if (fd < 0) throw std::runtime_error("fixture server: cannot create a temporary file");
  ::close(fd);
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

// The issues of the fixture's imitation of GitHub's APIs, by number (from 1, oldest first): every
// fifth a pull request, every third closed, the first three labelled.
constexpr int kGithubIssues = 230;
struct GithubIssue {
  explicit GithubIssue(int n)
      : number(n),
        author(n % 7),
        comments(n % 4),
        closed(n % 3 == 0),
        labelled(n <= 3),
        pull_request(n % 5 == 0),
        created(fmt::format("2026-0{}-1{}T10:00:00Z", 1 + n % 9, n % 10)) {}
  int number, author, comments;
  bool closed, labelled, pull_request;
  std::string created;
};

}  // namespace

struct FixtureServer::Impl {
  static constexpr std::size_t kMaxArrivals = 100000;  // per key; later requests are not timed

  std::string address;  // loopback, 127.0.0.1 unless asked otherwise
  std::string root;
  std::unique_ptr<httplib::Server> server_ptr;  // an httplib::SSLServer when TLS is on
  std::string ca_file;                          // the self-signed certificate, PEM (TLS only)
  std::string client_cert_file, client_key_file;  // the client's, with client_certs
  std::thread thread;
  int port = 0;
  int reset_fd = -1;
  int reset_port = 0;
  std::thread reset_thread;
  std::atomic<bool> stopping{false};
  mutable std::mutex mutex;
  std::map<std::string, Counter> counters;
  std::map<std::string, std::set<std::string>> peers;  // per counter key: "address:port" of each connection
  std::map<std::string, std::vector<std::chrono::steady_clock::time_point>> arrivals;  // per counter key
  std::map<std::string, int> flaky;
  std::map<std::string, std::string> flaky_keys;  // /flaky: the Idempotency-Key of each request, by key
  std::set<std::string> imds_tokens;  // the session tokens /imds gave
  struct Quota {
    double window_start = 0;  // Unix seconds
    int used = 0;
  };
  std::map<std::string, Quota> quotas;  // /ratelimit's windows, per key
  std::map<std::string, int> ranged;
  // /oauth-token's access tokens: when each expires (steady clock) and the scope (and audience) it was
  // asked for; /oauth-api?revoke=1 clears them.
  struct Token {
    std::chrono::steady_clock::time_point expires;
    std::string scope;
    std::string bound_to;  // the thumbprint of the client certificate it was issued to (tls_client_auth)
  };
  std::map<std::string, Token> tokens;
  int tokens_issued = 0;
  std::set<std::string> spent_refresh_tokens;  // /oauth-token?rotate=1's refresh tokens, once used
  std::set<std::string> digest_nonces;         // the nonces /digest-auth issued
  // /ntlm-auth's connections (client address:port; NTLM authenticates a connection, not a request):
  // the challenge each was sent, and the user each proved.
  std::map<std::string, std::string> ntlm_challenges, ntlm_users;
  std::uint64_t ntlm_challenges_issued = 0;
  int refresh_tokens_issued = 0;
  std::string gzip_text;

  // Counts one request under each of its keys for as long as the handler runs.
  class Track {
   public:
    Track(Impl& impl, const httplib::Request& req) : impl_(impl) {
      std::string path = req.path;
      auto slash = path.find('/', 1);
      std::string first = !path.starts_with('/')       ? std::string("proxy")  // absolute-form target
                          : slash == std::string::npos ? path
                                                       : path.substr(0, slash);
      keys_ = {"*", first, "host:" + req.get_header_value("Host"), "agent:" + req.get_header_value("User-Agent")};
      if (req.has_header("Proxy-Authorization"))
        keys_.push_back("proxy-auth:" + req.get_header_value("Proxy-Authorization"));
      if (req.has_header("Range")) keys_.push_back("range:" + req.get_header_value("Range"));
      const std::string peer = fmt::format("{}:{}", req.remote_addr, req.remote_port);
      const auto now = std::chrono::steady_clock::now();
      std::lock_guard lock(impl_.mutex);
      for (const auto& k : keys_) {
        if (auto& times = impl_.arrivals[k]; times.size() < kMaxArrivals) times.push_back(now);
        Counter& c = impl_.counters[k];
        if (impl_.peers[k].insert(peer).second) ++c.connections;
        ++c.requests;
        ++c.current;
        c.max_concurrent = std::max(c.max_concurrent, c.current);
      }
    }
    ~Track() {
      std::lock_guard lock(impl_.mutex);
      for (const auto& k : keys_) --impl_.counters[k].current;
    }

   private:
    Impl& impl_;
    std::vector<std::string> keys_;
  };

  using Handler = std::function<void(const httplib::Request&, httplib::Response&)>;
  // HTTP Digest (RFC 7616: MD5, qop auth, a nonce of this server's) for `user` with `password`, as a
  // server (Authorization; else 401 and WWW-Authenticate) or, with `proxy`, a proxy
  // (Proxy-Authorization; else 407 and Proxy-Authenticate). True when the request proves them;
  // else the challenge is the answer in `res`.
  bool digest(const httplib::Request& req, httplib::Response& res, const std::string& user, const std::string& password,
              bool proxy) {
    const std::string header = req.get_header_value(proxy ? "Proxy-Authorization" : "Authorization");
    auto param = [&header](const std::string& name) {  // name="value" or name=value
      std::smatch m;
      const std::regex re("(?:^Digest |, ?)" + name + R"re(=(?:"([^"]*)"|([^,]*)))re");
      if (!std::regex_search(header, m, re)) return std::string();
      return m[1].matched ? m[1].str() : m[2].str();
    };
    auto md5 = [](const std::string& text) {
      unsigned char sum[EVP_MAX_MD_SIZE];
      unsigned int size = 0;
      EVP_Digest(text.data(), text.size(), sum, &size, EVP_md5(), nullptr);
      return hex(sum, size);
    };
    if (header.starts_with("Digest ")) {
      bool known;
      {
        std::lock_guard lock(mutex);
        known = digest_nonces.count(param("nonce")) > 0;
      }
      // The uri is the request target's path and query (also for a proxy, which gets the whole
      // URL: libcurl hashes the path and query); cpp-httplib percent-decodes header values, so the
      // raw text that went into the client's hash is the target's.
      std::string uri = req.target;
      if (const auto scheme = uri.find("://"); !uri.starts_with('/') && scheme != std::string::npos) {
        const auto path = uri.find('/', scheme + 3);
        uri = path == std::string::npos ? "/" : uri.substr(path);
      }
      const std::string ha1 = md5(user + ":fixture:" + password);
      const std::string ha2 = md5(req.method + ':' + uri);
      const std::string expected =
          md5(fmt::format("{}:{}:{}:{}:auth:{}", ha1, param("nonce"), param("nc"), param("cnonce"), ha2));
      if (known && param("username") == user && param("realm") == "fixture" && param("qop") == "auth" &&
          param("uri") == httplib::detail::decode_url(uri, false) && param("response") == expected) {
        return true;
      }
    }
    std::string nonce;
    {
      std::lock_guard lock(mutex);
      nonce = md5(fmt::format("nonce-{}", digest_nonces.size()));
      digest_nonces.insert(nonce);
    }
    res.status = proxy ? 407 : 401;
    res.set_header(proxy ? "Proxy-Authenticate" : "WWW-Authenticate",
                   fmt::format(R"(Digest realm="fixture", qop="auth", algorithm=MD5, nonce="{}")", nonce));
    return false;
  }

  // NTLM (MS-NLMP) as IIS (or, with `proxy`, a proxy: Proxy-Authorization, 407) speaks it, for `user`
  // with `password` (and `wanted_domain` when given; names compared case-blind): a negotiate
  // message (type 1) gets a 401 with a challenge of this server's (type 2, with target info, so that
  // the answer is NTLMv2); the authenticate message (type 3) that answers it on the same connection
  // with the user's NTLMv2 response is granted ("handshake"), and so are the connection's later
  // requests without an Authorization header ("connection"). Any other request: 401 with
  // "WWW-Authenticate: NTLM". Returns the grant, or nullopt with the answer in `res`.
  struct NtlmGrant {
    std::string domain;  // as the client sent it
    const char* via;     // "handshake" or "connection"
  };
  std::optional<NtlmGrant> ntlm(const httplib::Request& req, httplib::Response& res, const std::string& user,
                                const std::string& password, const std::optional<std::string>& wanted_domain,
                                bool proxy) {
    const std::string connection = fmt::format("{}{}:{}", proxy ? "proxy " : "", req.remote_addr, req.remote_port);
    const std::string header = req.get_header_value(proxy ? "Proxy-Authorization" : "Authorization");
    const int status = proxy ? 407 : 401;
    const char* challenge_header = proxy ? "Proxy-Authenticate" : "WWW-Authenticate";
    auto refuse = [&]() -> std::optional<NtlmGrant> {
      res.status = status;
      res.set_header(challenge_header, "NTLM");
      return std::nullopt;
    };
    if (header.empty()) {
      std::lock_guard lock(mutex);
      if (auto it = ntlm_users.find(connection); it != ntlm_users.end()) return NtlmGrant{it->second, "connection"};
      return refuse();
    }
    const std::string message = header.starts_with("NTLM ") ? base64_decode(header.substr(5)) : std::string();
    if (message.size() < 12 || message.compare(0, 8, std::string("NTLMSSP\0", 8)) != 0) return refuse();
    auto u16 = [&message](std::size_t at) {
      return static_cast<std::size_t>(static_cast<unsigned char>(message[at]) |
                                      static_cast<unsigned char>(message[at + 1]) << 8);
    };
    auto u32 = [&](std::size_t at) { return u16(at) | u16(at + 2) << 16; };
    // A security buffer: a length and an offset into the message ("" when out of it).
    auto field = [&](std::size_t at) {
      if (at + 8 > message.size()) return std::string();
      const std::size_t size = u16(at), offset = u32(at + 4);
      return offset <= message.size() && size <= message.size() - offset ? message.substr(offset, size) : std::string();
    };
    if (message[8] == 1) {  // negotiate: challenge it
      std::string challenge;
      {
        std::lock_guard lock(mutex);
        const std::uint64_t n = ++ntlm_challenges_issued;
        challenge = md4(fmt::format("challenge-{}", n)).substr(0, 8);
        ntlm_challenges[connection] = challenge;
        ntlm_users.erase(connection);
      }
      const std::string target = utf16le("FIXTURE");
      const std::string info = std::string("\x02\x00", 2) + static_cast<char>(target.size()) + '\0' + target +
                               std::string(4, '\0');  // MsvAvNbDomainName, then MsvAvEOL
      auto le16 = [](std::size_t v) { return std::string{static_cast<char>(v), static_cast<char>(v >> 8)}; };
      auto le32 = [&](std::size_t v) { return le16(v & 0xffff) + le16(v >> 16); };
      // UNICODE | REQUEST_TARGET | NTLM | ALWAYS_SIGN | TARGET_TYPE_DOMAIN | EXTENDED_SESSIONSECURITY
      // | TARGET_INFO
      const std::size_t flags = 0x1 | 0x4 | 0x200 | 0x8000 | 0x10000 | 0x80000 | 0x800000;
      const std::size_t header_size = 48;
      const std::string type2 = std::string("NTLMSSP\0", 8) + le32(2) + le16(target.size()) + le16(target.size()) +
                                le32(header_size) + le32(flags) + challenge + std::string(8, '\0') + le16(info.size()) +
                                le16(info.size()) + le32(header_size + target.size()) + target + info;
      res.status = status;
      res.set_header(challenge_header,
                     "NTLM " + base64(reinterpret_cast<const unsigned char*>(type2.data()), type2.size()));
      return std::nullopt;
    }
    if (message[8] != 3 || message.size() < 64) return refuse();
    std::string challenge;
    {
      std::lock_guard lock(mutex);
      auto it = ntlm_challenges.find(connection);
      if (it == ntlm_challenges.end()) return refuse();  // not challenged on this connection
      challenge = it->second;
      ntlm_challenges.erase(it);
    }
    const std::string response = field(20), domain = from_utf16le(field(28)), sent_user = from_utf16le(field(36));
    if (response.size() < 16 + 28 || upper(sent_user) != upper(user) ||
        (wanted_domain && upper(domain) != upper(*wanted_domain))) {
      return refuse();
    }
    // NTOWFv2 = HMAC-MD5(MD4(UTF-16LE(password)), UTF-16LE(upper(user) + domain)); the response's
    // first 16 bytes are HMAC-MD5(NTOWFv2, challenge + the rest).
    const std::string key = hmac(EVP_md5(), md4(utf16le(password)), utf16le(upper(sent_user) + domain));
    if (hmac(EVP_md5(), key, challenge + response.substr(16)) != response.substr(0, 16)) return refuse();
    {
      std::lock_guard lock(mutex);
      ntlm_users[connection] = domain;
    }
    {
      std::lock_guard lock(mutex);
      ntlm_users[connection] = domain;
    }
    return NtlmGrant{domain, "handshake"};
  }

  // The keys a credentials endpoint counted under `name` serves: /aws's, for an hour; the first
  // answer's secret is the request's `first` (a wrong one) when given, expiring in `expires` seconds.
  std::pair<std::string, std::chrono::system_clock::time_point> served_keys(const httplib::Request& req,
                                                                            const std::string& name) {
    int seen;
    {
      std::lock_guard lock(mutex);
      seen = flaky[name]++;
    }
    const bool first = seen == 0 && req.has_param("first");
    const int seconds = first && req.has_param("expires") ? std::stoi(req.get_param_value("expires")) : 3600;
    return {first ? req.get_param_value("first") : std::string("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            std::chrono::system_clock::now() + std::chrono::seconds(seconds)};
  }

  Handler tracked(Handler h) {
    return [this, h](const httplib::Request& req, httplib::Response& res) {
      Track t(*this, req);
      h(req, res);
    };
  }

  // GET, HEAD (httplib answers it from GET's handler), POST, PUT, PATCH and DELETE.
  void every_method(const std::string& pattern, const Handler& h) {
    httplib::Server* server = server_ptr.get();
    server->Get(pattern, h);
    server->Post(pattern, h);
    server->Put(pattern, h);
    server->Patch(pattern, h);
    server->Delete(pattern, h);
  }

  // Sleeps `ms`, or until the server stops. Checks for the stop every 50 ms: dozens of delayed
  // answers at once, each waking every 5 ms, took the CPU that a test's other answers needed under
  // ASan.
  void pause(std::chrono::milliseconds ms) {
    const auto until = std::chrono::steady_clock::now() + ms;
    while (std::chrono::steady_clock::now() < until && !stopping.load()) {
      std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
          until - std::chrono::steady_clock::now(), std::chrono::milliseconds(50)));
    }
  }

  void routes() {
    httplib::Server* server = server_ptr.get();
    every_method(R"(/status/(\d+))", tracked([](const httplib::Request& req, httplib::Response& res) {
                   res.status = std::stoi(req.matches[1]);
                   for (std::size_t i = 0; i < req.get_param_value_count("header"); ++i) {
                     const std::string line = req.get_param_value("header", i);
                     const auto colon = line.find(':');
                     res.set_header(line.substr(0, colon), colon == std::string::npos ? "" : line.substr(colon + 1));
                   }
                   // 204 and 304 have no body (RFC 9110): bytes after their headers would be read as
                   // the start of the next response on the connection.
                   if (res.status != 204 && res.status != 304) {
                     res.set_content(
                         req.has_param("body") ? req.get_param_value("body") : fmt::format("status {}\n", res.status),
                         req.has_param("type") ? req.get_param_value("type") : "text/plain");
                   }
                 }));
    every_method(R"(/delay/(\d+))", tracked([this](const httplib::Request& req, httplib::Response& res) {
                   pause(std::chrono::milliseconds(std::stoi(req.matches[1])));
                   res.set_content(fmt::format("delayed {}ms\n", req.matches[1].str()), "text/plain");
                 }));
    server->Get(R"(/retry-after/(\d+))", tracked([](const httplib::Request& req, httplib::Response& res) {
                  res.status = req.has_param("status") ? std::stoi(req.get_param_value("status")) : 503;
                  int seconds = std::stoi(req.matches[1]);
                  res.set_header("Retry-After", req.has_param("date") ? http_date(std::time(nullptr) + seconds)
                                                                      : std::to_string(seconds));
                  res.set_content("try later\n", "text/plain");
                }));
    // An API with a quota: `limit` requests per `window` seconds per key; beyond, `status` (default
    // 403, as GitHub answers) until the window renews. Every answer says how many are left and when
    // the window renews: X-RateLimit-* with the reset in Unix seconds (GitHub's), or with
    // &style=ietf RateLimit-* with the reset in seconds from now.
    server->Get(R"(/ratelimit/([^/]+))", tracked([this](const httplib::Request& req, httplib::Response& res) {
                  const int limit = req.has_param("limit") ? std::stoi(req.get_param_value("limit")) : 3;
                  const double window = req.has_param("window") ? std::stod(req.get_param_value("window")) : 1;
                  const bool ietf = req.get_param_value("style") == "ietf";
                  const double now =
                      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
                  int used;
                  double reset;
                  {
                    std::lock_guard lock(mutex);
                    Quota& q = quotas[req.matches[1]];
                    if (now >= q.window_start + window) q = Quota{now, 0};
                    used = ++q.used;
                    reset = q.window_start + window;
                  }
                  const std::string prefix = ietf ? "RateLimit-" : "X-RateLimit-";
                  res.set_header(prefix + "Limit", std::to_string(limit));
                  res.set_header(prefix + "Remaining", std::to_string(std::max(0, limit - used)));
                  res.set_header(prefix + "Reset", ietf ? std::to_string(static_cast<long>(std::ceil(reset - now)))
                                                        : std::to_string(static_cast<long>(std::ceil(reset))));
                  if (used > limit) {
                    res.status = req.has_param("status") ? std::stoi(req.get_param_value("status")) : 403;
                    res.set_content("API rate limit exceeded\n", "text/plain");
                  } else {
                    res.set_content(fmt::format("request {} of {}\n", used, limit), "text/plain");
                  }
                }));
    every_method(R"(/flaky/([^/]+))", tracked([this](const httplib::Request& req, httplib::Response& res) {
                   int fail = req.has_param("fail") ? std::stoi(req.get_param_value("fail")) : 1;
                   int seen;
                   std::string keys;
                   {
                     std::lock_guard lock(mutex);
                     seen = flaky[req.matches[1]]++;
                     keys = flaky_keys[req.matches[1]] += " " + req.get_header_value("Idempotency-Key");
                   }
                   if (req.has_param("id"))
                     res.set_header("X-Request-Id", fmt::format("{}-{}", req.matches[1].str(), seen));
                   if (seen < fail) {
                     res.status = req.has_param("status") ? std::stoi(req.get_param_value("status")) : 503;
                     if (req.has_param("after")) res.set_header("Retry-After", req.get_param_value("after"));
                     res.set_content("flaky failure\n",
                                     req.has_param("type") ? req.get_param_value("type") : "text/plain");
                   } else {
                     if (req.has_param("then_delay"))
                       pause(std::chrono::milliseconds(std::stoi(req.get_param_value("then_delay"))));
                     res.set_content(
                         req.has_param("keys") ? "keys:" + keys + "\n" : fmt::format("ok after {} failures\n", fail),
                         "text/plain");
                   }
                 }));
    // A server that can take `max` requests at a time (counted under /busy) and answers 503 to
    // the others at once; the ones it takes are answered after `delay` ms (query, default 20).
    server->Get(R"(/busy/(\d+)/.*)", tracked([this](const httplib::Request& req, httplib::Response& res) {
                  int current;
                  {
                    std::lock_guard lock(mutex);
                    current = counters["/busy"].current;
                  }
                  if (current > std::stoi(req.matches[1])) {
                    res.status = 503;
                    res.set_content("busy\n", "text/plain");
                    return;
                  }
                  const int delay = req.has_param("delay") ? std::stoi(req.get_param_value("delay")) : 20;
                  std::this_thread::sleep_for(std::chrono::milliseconds(delay));
                  res.set_content("done\n", "text/plain");
                }));
    server->Get("/truncated", tracked([](const httplib::Request&, httplib::Response& res) {
                  res.set_content_provider(100000, "text/plain",
                                           [](std::size_t offset, std::size_t, httplib::DataSink& sink) {
                                             if (offset > 0) return false;  // closes the connection mid-body
                                             std::string part(1000, 't');
                                             sink.write(part.data(), part.size());
                                             return true;
                                           });
                }));
    server->Get(R"(/huge/(\d+))", tracked([this](const httplib::Request& req, httplib::Response& res) {
                  std::size_t total = std::stoull(req.matches[1]);
                  const int pace = req.has_param("pace") ? std::stoi(req.get_param_value("pace")) : 0;
                  res.set_content_provider(
                      total, "application/octet-stream",
                      [this, pace](std::size_t offset, std::size_t length, httplib::DataSink& sink) {
                        static const std::string block(1 << 16, 'x');
                        if (pace > 0 && offset > 0 && !stopping.load())
                          std::this_thread::sleep_for(std::chrono::milliseconds(pace));
                        std::size_t n = std::min(length, block.size());
                        sink.write(block.data(), n);
                        return true;
                      });
                }));
    server->Get(R"(/bytes/(\d+))", tracked([](const httplib::Request& req, httplib::Response& res) {
                  const std::uint64_t seed = req.has_param("seed") ? std::stoull(req.get_param_value("seed")) : 1;
                  const std::string type =
                      req.has_param("type") ? req.get_param_value("type") : "application/octet-stream";
                  res.set_content(random_bytes(std::stoull(req.matches[1]), seed), type);
                }));
    // A file that can be fetched in parts (Range, If-Range) and whose first `cuts` responses break
    // off after `cut` bytes of their body, as a download on a flaky link does.
    server->Get(R"(/ranged/([^/]+)/(\d+))", tracked([this](const httplib::Request& req, httplib::Response& res) {
                  int seen;
                  {
                    std::lock_guard lock(mutex);
                    seen = ranged[req.matches[1]]++;
                  }
                  auto param = [&req](const char* name, std::uint64_t fallback) {
                    return req.has_param(name) ? std::stoull(req.get_param_value(name)) : fallback;
                  };
                  const std::uint64_t cuts = param("cuts", 1);
                  const std::uint64_t cut = param("cut", ~std::uint64_t{0});
                  const std::uint64_t seed =
                      seen >= static_cast<int>(cuts) ? param("changed", param("seed", 1)) : param("seed", 1);
                  const std::size_t size = seen >= static_cast<int>(cuts) && req.has_param("then")
                                               ? std::stoull(req.get_param_value("then"))
                                               : std::stoull(req.matches[2]);
                  const std::string how = req.has_param("validator") ? req.get_param_value("validator") : "etag";
                  std::string validator;
                  if (how == "etag") {
                    validator = fmt::format("\"r{}-{}\"", seed, size);
                    res.set_header("ETag", validator);
                  } else if (how == "date") {
                    validator = http_date(1700000000 + static_cast<std::time_t>(seed) * 86400);
                    res.set_header("Last-Modified", validator);
                  }
                  res.set_header("Accept-Ranges", "bytes");
                  auto body = std::make_shared<const std::string>(random_bytes(size, seed));
                  auto sent = std::make_shared<std::uint64_t>(0);
                  const std::uint64_t limit = seen < static_cast<int>(cuts) ? cut : ~std::uint64_t{0};
                  const auto pace = std::chrono::milliseconds(param("pace", 0));
                  auto send = [this, body, sent, limit, pace](std::size_t offset, std::size_t length,
                                                              httplib::DataSink& sink) {
                    if (*sent >= limit) return false;  // closes the connection mid-body
                    if (pace.count() > 0 && *sent > 0 && !stopping.load()) std::this_thread::sleep_for(pace);
                    std::size_t n = std::min(
                        {length, body->size() - offset, std::size_t{1} << 16, static_cast<std::size_t>(limit - *sent)});
                    sink.write(body->data() + offset, n);
                    *sent += n;
                    return true;
                  };
                  // The whole file, chunked (cpp-httplib would cut a response of known length to the Range).
                  auto whole = [&res, send, body](int status) {
                    res.status = status;
                    res.set_chunked_content_provider("application/octet-stream",
                                                     [send, body](std::size_t offset, httplib::DataSink& sink) {
                                                       if (offset >= body->size()) {
                                                         sink.done();
                                                         return true;
                                                       }
                                                       return send(offset, body->size() - offset, sink);
                                                     });
                  };
                  const std::string if_range = req.get_header_value("If-Range");
                  if (req.has_header("Range") && req.has_param("misrange")) {
                    // A broken server: 206, but the file from its first byte whatever was asked.
                    res.set_header("Content-Range", fmt::format("bytes 0-{}/{}", size - 1, size));
                    return whole(206);
                  }
                  // An If-Range that names another version gets the whole file (RFC 9110, 13.1.5).
                  if (req.has_header("Range") && (how == "none" || (!if_range.empty() && if_range != validator)))
                    return whole(200);
                  if (!req.has_header("Range") && req.has_param("chunked")) return whole(200);
                  res.set_content_provider(size, "application/octet-stream", send);  // Range: 206, by cpp-httplib
                }));
    server->Get("/gzip", tracked([this](const httplib::Request&, httplib::Response& res) {
                  res.set_header("Content-Encoding", "gzip");
                  res.set_content(gzip_text, "text/plain");
                }));
    server->Get("/bad-gzip", tracked([](const httplib::Request&, httplib::Response& res) {
                  res.set_header("Content-Encoding", "gzip");
                  std::string body = "\x1f\x8b\x08";
                  body += '\0';
                  body += "not gzip after its magic bytes";
                  res.set_content(body, "text/plain");
                }));
    server->Get("/gzip-bomb", tracked([](const httplib::Request&, httplib::Response& res) {
                  res.set_header("Content-Encoding", "gzip");
                  res.set_content(gzip_bomb(), "application/octet-stream");
                }));
    server->Get(R"(/redirect/(\d+))", tracked([](const httplib::Request& req, httplib::Response& res) {
                  int n = std::stoi(req.matches[1]);
                  if (n == 0) {
                    res.set_content("redirected\n", "text/plain");
                    return;
                  }
                  res.set_redirect(fmt::format("/redirect/{}", n - 1), 302);
                }));
    server->Get("/redirect-loop", tracked([](const httplib::Request&, httplib::Response& res) {
                  res.set_redirect("/redirect-loop", 302);
                }));
    server->Get("/redirect-to", tracked([](const httplib::Request& req, httplib::Response& res) {  // HEAD too
                  int status = req.has_param("status") ? std::stoi(req.get_param_value("status")) : 302;
                  res.set_redirect(req.get_param_value("url"), status);
                }));
    server->Post("/redirect-to", tracked([](const httplib::Request& req, httplib::Response& res) {
                   int status = req.has_param("status") ? std::stoi(req.get_param_value("status")) : 303;
                   res.set_redirect(req.get_param_value("url"), status);
                 }));
    auto echo = tracked([](const httplib::Request& req, httplib::Response& res) {
      std::string headers;
      for (const auto& [name, value] : req.headers) {
        if (!headers.empty()) headers += ',';
        headers += fmt::format("\"{}\":\"{}\"", json_escape(name), json_escape(value));
      }
      res.set_content(
          fmt::format(R"({{"method":"{}","path":"{}","target":"{}","body":"{}","headers":{{{}}}}})", req.method,
                      json_escape(req.path), json_escape(req.target), json_escape(req.body), headers),
          "application/json");
    });
    auto headers = tracked([](const httplib::Request& req, httplib::Response& res) {
      for (const auto& [name, value] : req.params) res.headers.emplace(name, value);
      res.set_content("headers\n", "text/plain");
    });
    server->Get("/headers", headers);
    server->Post("/headers", headers);
    // A client that uses this server as its HTTP proxy sends the whole URL as the request target.
    // One whose query has proxy_ntlm=U:P must prove user U, password P to the proxy with NTLM
    // (ntlm(), 407 challenges): "proxied <url> (ntlm: <domain>, <via>)"; with proxy_digest=U:P with
    // Digest (digest()): "proxied <url> (digest)".
    server->Get(R"(https?://.*)", tracked([this](const httplib::Request& req, httplib::Response& res) {
                  // The user and password of query parameter `name` (U:P).
                  auto credentials = [&req](const char* name) {
                    const std::string text = req.get_param_value(name);
                    const std::size_t colon = text.find(':');
                    return std::pair(text.substr(0, colon),
                                     colon == std::string::npos ? std::string() : text.substr(colon + 1));
                  };
                  if (req.has_param("proxy_digest")) {
                    const auto [user, password] = credentials("proxy_digest");
                    if (digest(req, res, user, password, true)) {
                      res.set_content(fmt::format("proxied {} (digest)\n", req.path), "text/plain");
                    }
                    return;
                  }
                  if (!req.has_param("proxy_ntlm")) {
                    res.set_content(fmt::format("proxied {}\n", req.path), "text/plain");
                    return;
                  }
                  const auto [user, password] = credentials("proxy_ntlm");
                  const auto grant = ntlm(req, res, user, password, std::nullopt, true);
                  if (grant) {
                    res.set_content(fmt::format("proxied {} (ntlm: {}, {})\n", req.path, grant->domain, grant->via),
                                    "text/plain");
                  }
                }));
    // A GraphQL-style API paged by a cursor in the POST body ({"variables": {"after": "c20"}} or
    // null for the first page; 415 without Content-Type: application/json), Relay's answer: edges, then pageInfo's
    // hasNextPage and endCursor (the last item's cursor, also on the last page).
    server->Post(
        R"(/cursor/(\d+))", tracked([](const httplib::Request& req, httplib::Response& res) {
          const int total = std::stoi(req.matches[1]);
          const int per = req.has_param("per") ? std::max(1, std::stoi(req.get_param_value("per"))) : 10;
          if (req.get_header_value("Content-Type").rfind("application/json", 0) != 0) {
            res.status = 415;
            res.set_content(R"({"errors":[{"message":"send Content-Type: application/json"}]})", "application/json");
            return;
          }
          static const std::regex after_re(R"re("after"\s*:\s*(null|"c(\d+)"))re");
          std::smatch m;
          if (!std::regex_search(req.body, m, after_re)) {
            res.status = 400;
            res.set_content(R"({"errors":[{"message":"variables.after is missing"}]})", "application/json");
            return;
          }
          const int first = m[2].matched ? std::stoi(m[2]) + 1 : 0;
          const int end = std::min(total, first + per);
          std::string edges;
          for (int i = first; i < end; ++i) {
            edges += fmt::format(R"({}{{"cursor":"c{}","node":{{"id":{},"name":"item {}"}}}})",
                                 edges.empty() ? "" : ",", i, i, i);
          }
          const std::string cursor = end > first ? fmt::format("\"c{}\"", end - 1) : "null";
          res.set_content(
              fmt::format(R"({{"data":{{"items":{{"edges":[{}],"pageInfo":{{"hasNextPage":{},"endCursor":{}}}}}}}}})",
                          edges, end < total ? "true" : "false", cursor),
              "application/json");
        }));
    // A REST API paged by its Link header, as GitHub's: ?page=N (from 1) of n items, P a page
    // (default 10), a JSON array of {"id": i}; rel="next" relative, first, prev and last absolute.
    server->Get(R"(/paged/(\d+))", tracked([](const httplib::Request& req, httplib::Response& res) {
                  const int total = std::stoi(req.matches[1]);
                  const int per = req.has_param("per") ? std::max(1, std::stoi(req.get_param_value("per"))) : 10;
                  const int page = req.has_param("page") ? std::max(1, std::stoi(req.get_param_value("page"))) : 1;
                  const int pages = std::max(1, (total + per - 1) / per);
                  auto at = [&](int n, bool absolute) {
                    return fmt::format("<{}/paged/{}?page={}&per={}>",
                                       absolute ? "http://" + req.get_header_value("Host") : "", total, n, per);
                  };
                  std::string link = fmt::format(R"({}; rel="first")", at(1, true));
                  if (page > 1) link += fmt::format(R"(, {}; rel="prev")", at(page - 1, true));
                  if (page < pages) link += fmt::format(R"(, {}; rel="next")", at(page + 1, false));
                  link += fmt::format(R"(, {}; rel="last")", at(pages, true));
                  res.set_header("Link", link);
                  std::string items;
                  const int first = req.has_param("offset") ? std::max(0, std::stoi(req.get_param_value("offset")))
                                                            : (page - 1) * per;
                  for (int i = first; i < std::min(total, first + per); ++i)
                    items += fmt::format(R"({}{{"id":{}}})", items.empty() ? "" : ",", i);
                  res.set_content("[" + items + "]", "application/json");
                }));
    // GitHub's REST API for a repository's issues, as pipelines/github_issues.yaml reads it: 230
    // issues (every fifth a pull request, the first few labelled), ?page=N&per_page=P (default 30,
    // at most 100), the next page in the Link header, the quota's headers (5000 an hour, never used up).
    server->Get(
        R"(/github/repos/([^/]+)/([^/]+)/issues)", tracked([](const httplib::Request& req, httplib::Response& res) {
          const int per =
              std::clamp(req.has_param("per_page") ? std::stoi(req.get_param_value("per_page")) : 30, 1, 100);
          const int page = req.has_param("page") ? std::max(1, std::stoi(req.get_param_value("page"))) : 1;
          const int pages = (kGithubIssues + per - 1) / per;
          const std::string base =
              fmt::format("http://{}/github/repos/{}/{}/issues?state={}&per_page={}", req.get_header_value("Host"),
                          req.matches[1].str(), req.matches[2].str(), req.get_param_value("state"), per);
          std::string link;
          if (page < pages) link = fmt::format(R"(<{}&page={}>; rel="next", )", base, page + 1);
          res.set_header("Link", link + fmt::format(R"(<{}&page={}>; rel="last")", base, pages));
          res.set_header("X-RateLimit-Limit", "5000");
          res.set_header("X-RateLimit-Remaining", "4990");
          res.set_header("X-RateLimit-Reset", std::to_string(std::time(nullptr) + 3600));
          std::string issues;
          for (int i = (page - 1) * per; i < std::min(kGithubIssues, page * per); ++i) {
            const GithubIssue issue(kGithubIssues - i);  // newest first
            issues += fmt::format(
                R"({}{{"number":{},"title":"Issue {}","state":"{}","user":{{"login":"user{}"}},)"
                R"("labels":[{}],"comments":{},"created_at":"{}"{}}})",
                issues.empty() ? "" : ",", issue.number, issue.number, issue.closed ? "closed" : "open", issue.author,
                issue.labelled ? R"({"name":"bug"},{"name":"help wanted"})" : "", issue.comments, issue.created,
                issue.pull_request ? R"(,"pull_request":{"url":"https://example/pr"})" : "");
          }
          res.set_content("[" + issues + "]", "application/json");
        }));
    // GitHub's GraphQL API for a repository's issues, as pipelines/github_issues_graphql.yaml reads
    // it: the same issues as above (the pull requests left out, as GraphQL's issues are), oldest
    // first, `first` (at most 100) a page after the cursor in variables.after; a token is needed
    // (401 without), an unknown repository (name 'missing') is an error in a 200 answer.
    server->Post(
        "/github/graphql", tracked([](const httplib::Request& req, httplib::Response& res) {
          if (!req.get_header_value("Authorization").starts_with("Bearer ")) {
            res.status = 401;
            res.set_content(R"({"message":"This endpoint requires you to be authenticated."})", "application/json");
            return;
          }
          auto variable = [&](const char* name) -> std::optional<std::string> {
            const std::regex re(fmt::format(R"re("{}"\s*:\s*("([^"]*)"|[0-9]+|null))re", name));
            std::smatch m;
            if (!std::regex_search(req.body, m, re) || m[1] == "null") return std::nullopt;
            return m[2].matched ? m[2].str() : m[1].str();
          };
          const auto owner = variable("owner"), name = variable("name"), after = variable("after");
          if (req.get_header_value("Content-Type").rfind("application/json", 0) != 0 || !owner || !name ||
              req.body.find("issues(") == std::string::npos) {
            res.status = 400;
            res.set_content(R"({"errors":[{"message":"Problems parsing JSON"}]})", "application/json");
            return;
          }
          if (*name == "missing") {
            res.set_content(fmt::format(R"({{"data":{{"repository":null}},"errors":[{{"type":"NOT_FOUND",)"
                                        R"("message":"Could not resolve to a Repository with the name '{}/{}'."}}]}})",
                                        *owner, *name),
                            "application/json");
            return;
          }
          const int first = std::clamp(std::stoi(variable("first").value_or("100")), 1, 100);
          std::vector<GithubIssue> all;  // oldest first
          for (int n = 1; n <= kGithubIssues; ++n) {
            if (!GithubIssue(n).pull_request) all.emplace_back(n);
          }
          const std::size_t start = after && after->starts_with("cursor:") ? std::stoul(after->substr(7)) + 1 : 0;
          const std::size_t end = std::min(all.size(), start + static_cast<std::size_t>(first));
          std::string nodes;
          for (std::size_t i = start; i < end; ++i) {
            const GithubIssue& issue = all[i];
            nodes += fmt::format(R"({}{{"number":{},"title":"Issue {}","state":"{}","author":{{"login":"user{}"}},)"
                                 R"("labels":{{"nodes":[{}]}},"comments":{{"totalCount":{}}},"createdAt":"{}"}})",
                                 nodes.empty() ? "" : ",", issue.number, issue.number, issue.closed ? "CLOSED" : "OPEN",
                                 issue.author, issue.labelled ? R"({"name":"bug"},{"name":"help wanted"})" : "",
                                 issue.comments, issue.created);
          }
          res.set_header("X-RateLimit-Limit", "5000");
          res.set_header("X-RateLimit-Remaining", "4990");
          res.set_header("X-RateLimit-Reset", std::to_string(std::time(nullptr) + 3600));
          res.set_content(
              fmt::format(R"({{"data":{{"repository":{{"issues":{{"totalCount":{},"pageInfo":{{"hasNextPage":{},)"
                          R"("endCursor":{}}},"nodes":[{}]}}}}}}}})",
                          all.size(), end < all.size() ? "true" : "false",
                          end > start ? fmt::format("\"cursor:{}\"", end - 1) : "null", nodes),
              "application/json");
        }));
    // An OAuth 2.0 authorization server (RFC 6749's client credentials grant) for client "sluice",
    // secret "s3cret" (and "svc:1", "p@ss w+rd/="), by HTTP Basic or in the form, answering after
    // `delay` ms (query); tokens live `life` seconds (default 3600; none: no expires_in sent); `fail`
    // requests after the first `from` (default 0) get `status` (default 503). The refresh token grant
    // (RFC 6749 6) takes any refresh token that begins with "rt-", from those clients or the public
    // client "app" (its id in the form, no secret), and answers with the same refresh token; with
    // `rotate=1` with a new one ("rt-new-N"), and the one sent is no longer good. The JWT bearer
    // grant (RFC 7523) takes an RS256 assertion that the PEM public key in file `jwt_key` verifies
    // (or, with `cert`, the key of that PEM certificate, which the assertion's header names by x5t),
    // from issuer `iss`, for this URL (aud), of an hour at most; its scope (and " sub:<subject>") is
    // the token's. A client may prove itself with such an assertion (client_assertion, RFC 7523
    // 2.2; its sub its iss) instead of a secret, for any grant. Clients "mtls" and "mtls-other" prove
    // themselves with their TLS certificate instead (RFC 8705 2.1, tls_client_auth: the certificate's
    // common name must be "sluice-client", the client_certs one, or "someone-else"), and their tokens
    // are bound to it (3): /oauth-api takes such a token only with that certificate. Client
    // "federated" proves itself with a federated credential (client_assertion, RFC 7521 4.2: here any
    // token that begins with "fed-"), named in its tokens' scope as " by:<token>".
    // The common name of the client's certificate (client_certs), or "none".
    // HTTP authentication as httpbin's endpoints: 200 {"user": U} to a request that proves user U
    // with password P (the path's, percent-decoded), else 401 and the scheme's challenge. Basic
    // (RFC 7617); Digest (RFC 7616: MD5, qop auth, a nonce of this server's).
    server->Get(R"(/basic-auth/([^/]+)/([^/]+))", tracked([](const httplib::Request& req, httplib::Response& res) {
                  const std::string user = httplib::detail::decode_url(req.matches[1], false);
                  const std::string password = httplib::detail::decode_url(req.matches[2], false);
                  const std::string header = req.get_header_value("Authorization");
                  if (header.starts_with("Basic ") && base64_decode(header.substr(6)) == user + ':' + password) {
                    res.set_content(fmt::format(R"({{"user":"{}"}})", json_escape(user)), "application/json");
                    return;
                  }
                  res.status = 401;
                  res.set_header("WWW-Authenticate", R"(Basic realm="fixture")");
                }));
    server->Get(R"(/digest-auth/([^/]+)/([^/]+))", tracked([this](const httplib::Request& req, httplib::Response& res) {
                  const std::string user = httplib::detail::decode_url(req.matches[1], false);
                  if (digest(req, res, user, httplib::detail::decode_url(req.matches[2], false), false)) {
                    res.set_content(fmt::format(R"({{"user":"{}"}})", json_escape(user)), "application/json");
                  }
                }));
    // /ntlm-auth/U/P?domain=D: NTLM as IIS speaks it (ntlm()): 200 {"user", "domain", "via", "body"}
    // when granted (the body of a POST).
    auto ntlm_auth = [this](const httplib::Request& req, httplib::Response& res) {
      const std::string user = httplib::detail::decode_url(req.matches[1], false);
      const auto grant =
          ntlm(req, res, user, httplib::detail::decode_url(req.matches[2], false),
               req.has_param("domain") ? std::optional(req.get_param_value("domain")) : std::nullopt, false);
      if (grant) {
        res.set_content(fmt::format(R"({{"user":"{}","domain":"{}","via":"{}","body":"{}"}})", json_escape(user),
                                    json_escape(grant->domain), grant->via, json_escape(req.body)),
                        "application/json");
      }
    };
    server->Get(R"(/ntlm-auth/([^/]+)/([^/]+))", tracked(ntlm_auth));
    server->Post(R"(/ntlm-auth/([^/]+)/([^/]+))", tracked(ntlm_auth));
    // An S3-like API behind AWS Signature Version 4 (access key "AKIDEXAMPLE", secret
    // "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", any region and service; with the session token
    // "session-1" as x-amz-security-token too, signed), checked by sigv4_refusal(). 200 {"path",
    // "query", "token"}, else 403 with S3's error code.
    auto aws = [](const httplib::Request& req, httplib::Response& res) {
      if (const char* code =
              sigv4_refusal(req, "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-1")) {
        res.status = 403;
        res.set_content(fmt::format("<Error><Code>{}</Code></Error>", code), "application/xml");
        return;
      }
      const std::size_t question = req.target.find('?');
      const bool token = req.has_header("x-amz-security-token");
      res.set_content(
          fmt::format(
              R"({{"path":"{}","query":"{}","token":{}}})", json_escape(req.path),
              json_escape(aws_canonical_query(question == std::string::npos ? "" : req.target.substr(question + 1))),
              token ? "true" : "false"),
          "application/json");
    };
    server->Get(R"(/aws/.*)", tracked(aws));
    server->Post(R"(/aws/.*)", tracked(aws));
    // A container's credentials endpoint, as ECS's agent and EKS Pod Identity answer: 200
    // {"AccessKeyId", "SecretAccessKey", "Token" (session-1), "Expiration"} with /aws's keys,
    // expiring in an hour; the first answer's secret is `first` (a wrong one: its requests get 403)
    // and expires in `expires` seconds when those are given. With `auth`, 401 unless the request's
    // Authorization is that; with `status`, that status, always.
    server->Get(
        "/aws-container-credentials", tracked([this](const httplib::Request& req, httplib::Response& res) {
          if (req.has_param("status")) {
            res.status = std::stoi(req.get_param_value("status"));
            res.set_content(R"({"code":"failed"})", "application/json");
            return;
          }
          if (req.has_param("auth") && req.get_header_value("Authorization") != req.get_param_value("auth")) {
            res.status = 401;
            res.set_content(R"({"code":"unauthorized"})", "application/json");
            return;
          }
          const auto [secret, expires] = served_keys(req, "/aws-container-credentials");
          res.set_content(
              fmt::format(R"({{"AccessKeyId":"AKIDEXAMPLE","SecretAccessKey":"{}","Token":"session-1",)"
                          R"("Expiration":"{:%Y-%m-%dT%H:%M:%SZ}","RoleArn":"arn:aws:iam::123456789012:role/r"}})",
                          json_escape(secret), std::chrono::floor<std::chrono::seconds>(expires)),
              "application/json");
        }));
    // An EC2 instance's metadata service (IMDS) under /imds/<how>, `how` words joined by '+': "v1"
    // (no session tokens: the PUT for one answers 404, the GETs need none), "short" (the first
    // keys' secret is wrong, and they expire in 2 s), "norole" (the instance has none: 404), "fail"
    // (the role's keys: 500), "refused" (their Code is not Success), "restart" (each answer with keys
    // forgets the session tokens given, as a restarted service). Otherwise IMDSv2: a GET without
    // a token the PUT gave answers 401. Each step is also counted under "imds:token", "imds:role"
    // and "imds:keys". The role is "sluice-role"; its keys are /aws's, with session token session-1.
    server->Put(R"(/imds/([^/]+)/latest/api/token)",
                tracked([this](const httplib::Request& req, httplib::Response& res) {
                  const std::string how = "+" + req.matches[1].str() + "+";
                  std::lock_guard lock(mutex);
                  ++counters["imds:token"].requests;
                  if (how.find("+v1+") != std::string::npos) {
                    res.status = 404;
                    return;
                  }
                  if (!req.has_header("X-aws-ec2-metadata-token-ttl-seconds")) {
                    res.status = 400;
                    return;
                  }
                  const std::string token = fmt::format("imds-token-{}", imds_tokens.size() + 1);
                  imds_tokens.insert(token);
                  res.set_header("X-aws-ec2-metadata-token-ttl-seconds",
                                 req.get_header_value("X-aws-ec2-metadata-token-ttl-seconds"));
                  res.set_content(token, "text/plain");
                }));
    server->Get(R"(/imds/([^/]+)/latest/meta-data/iam/security-credentials/(.*))",
                tracked([this](const httplib::Request& req, httplib::Response& res) {
                  const std::string how = "+" + req.matches[1].str() + "+", role = req.matches[2].str();
                  auto has = [&](const char* word) { return how.find(fmt::format("+{}+", word)) != std::string::npos; };
                  int seen;
                  {
                    std::lock_guard lock(mutex);
                    ++counters[role.empty() ? "imds:role" : "imds:keys"].requests;
                    if (!has("v1") && !imds_tokens.count(req.get_header_value("X-aws-ec2-metadata-token"))) {
                      res.status = 401;
                      return;
                    }
                    seen = role.empty() ? 0 : flaky["imds:keys"]++;
                    if (!role.empty() && has("restart")) imds_tokens.clear();  // its tokens forgotten
                  }
                  if (role.empty()) {
                    if (has("norole")) {
                      res.status = 404;
                      return;
                    }
                    res.set_content("sluice-role\n", "text/plain");
                    return;
                  }
                  if (role != "sluice-role") {
                    res.status = 404;
                    return;
                  }
                  if (has("fail")) {
                    res.status = 500;
                    return;
                  }
                  const bool first = seen == 0 && has("short");
                  const auto expires = std::chrono::system_clock::now() + std::chrono::seconds(first ? 2 : 3600);
                  res.set_content(
                      fmt::format(R"({{"Code":"{}","LastUpdated":"2026-12-06T12:00:00Z","Type":"AWS-HMAC",)"
                                  R"("AccessKeyId":"AKIDEXAMPLE","SecretAccessKey":"{}","Token":"session-1",)"
                                  R"("Expiration":"{:%Y-%m-%dT%H:%M:%SZ}"}})",
                                  has("refused") ? "AssumeRoleUnauthorizedAccess" : "Success",
                                  first ? "expired" : "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                                  std::chrono::floor<std::chrono::seconds>(expires)),
                      "text/plain");
                }));
    // STS's AssumeRoleWithWebIdentity and AssumeRole (form POSTs), as AWS answers them: XML with
    // /aws's keys and session token session-1, expiring in an hour; the first answer's secret is
    // `first` (a wrong one) and expires in `expires` seconds when those are given. For
    // AssumeRoleWithWebIdentity, 400 InvalidIdentityToken unless the WebIdentityToken is `token`; an
    // AssumeRole must be signed (sigv4_refusal()) with the source keys AKIDSOURCE and
    // "sourceSecret/EXAMPLE+key" (with "source-session" as its token, if it sends one), or with the
    // keys it gives (/aws's: a chain of roles, or keys from another endpoint first; with
    // `renewed_source`, only those after the first request: a source whose keys were renewed), else
    // 403 with the code, and send ExternalId `external` and DurationSeconds `duration` when those are
    // given, else 400 ValidationError. 400 ValidationError unless RoleSessionName is `session`
    // (when given); with `status`, that status and an IDPCommunicationError, always.
    server->Post(
        "/sts", tracked([this](const httplib::Request& req, httplib::Response& res) {
          httplib::Params form;
          httplib::detail::parse_query_text(req.body, form);
          auto field = [&form](const char* name) {
            auto it = form.find(name);
            return it == form.end() ? std::string() : it->second;
          };
          auto refuse = [&](int status, const char* code, const std::string& message) {
            res.status = status;
            res.set_content(fmt::format("<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error>"
                                        "<Type>Sender</Type><Code>{}</Code><Message>{}</Message></Error>"
                                        "<RequestId>r-1</RequestId></ErrorResponse>",
                                        code, message),
                            "text/xml");
          };
          if (req.has_param("status")) {
            return refuse(std::stoi(req.get_param_value("status")), "IDPCommunicationError",
                          "The identity provider could not be reached");
          }
          const std::string action = field("Action");
          if ((action != "AssumeRoleWithWebIdentity" && action != "AssumeRole") || field("Version") != "2011-06-15" ||
              field("RoleArn").empty()) {
            return refuse(400, "InvalidAction", "Could not find operation");
          }
          if (action == "AssumeRole") {
            bool renewed = false;  // with renewed_source: the source keys after the first request
            if (req.has_param("renewed_source")) {
              std::lock_guard lock(mutex);
              renewed = flaky["/sts"] > 0;
            }
            const char* code = renewed ? "InvalidAccessKeyId"
                                       : sigv4_refusal(req, "AKIDSOURCE", "sourceSecret/EXAMPLE+key", "source-session");
            if (code && std::string_view(code) == "InvalidAccessKeyId") {  // the keys this endpoint gives: a chain
              code = sigv4_refusal(req, "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-1");
            }
            if (code) {
              return refuse(403, code, "The request signature we calculated does not match the signature you provided");
            }
            for (const auto& [param, name] : {std::pair{"external", "ExternalId"}, {"duration", "DurationSeconds"}}) {
              if (req.has_param(param) && field(name) != req.get_param_value(param)) {
                return refuse(400, "ValidationError", fmt::format("{} is not the one expected", name));
              }
            }
          } else if (field("WebIdentityToken") != req.get_param_value("token")) {
            return refuse(400, "InvalidIdentityToken", "The web identity token that was passed is not valid");
          }
          if (req.has_param("session") && field("RoleSessionName") != req.get_param_value("session")) {
            return refuse(400, "ValidationError", "RoleSessionName is not the one expected");
          }
          const auto [secret, expires] = served_keys(req, "/sts");
          res.set_content(
              fmt::format("<{0}Response xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><{0}Result>{1}"
                          "<AssumedRoleUser><Arn>{2}/{3}</Arn></AssumedRoleUser>"
                          "<Credentials><AccessKeyId>AKIDEXAMPLE</AccessKeyId><SecretAccessKey>{4}</SecretAccessKey>"
                          "<SessionToken>session-1</SessionToken><Expiration>{5:%Y-%m-%dT%H:%M:%SZ}</Expiration>"
                          "</Credentials></{0}Result></{0}Response>",
                          action,
                          action == "AssumeRole" ? ""
                                                 : "<SubjectFromWebIdentityToken>system:serviceaccount:ns:sa"
                                                   "</SubjectFromWebIdentityToken>",
                          field("RoleArn"), field("RoleSessionName"), secret,
                          std::chrono::floor<std::chrono::seconds>(expires)),
              "text/xml");
        }));
    // IAM Identity Center's GetRoleCredentials (/sso/TOKEN/federation/credentials?account_id=
    // &role_name=, as the AWS CLI asks the SSO portal): /aws's keys and session token session-1 as
    // roleCredentials, expiring in an hour (with /sso/TOKEN/short/...: the first answer's secret a
    // wrong one, "expired", expiring in 2 s). 401 unless x-amz-sso_bearer_token is TOKEN, 403 unless
    // the account is 111122223333 and the role Crawler.
    server->Get(
        R"(/sso/([^/]+)(/short)?/federation/credentials)",
        tracked([this](const httplib::Request& req, httplib::Response& res) {
          if (req.get_header_value("x-amz-sso_bearer_token") != req.matches[1].str()) {
            res.status = 401;
            return res.set_content(R"({"message":"Session token not found or invalid"})", "application/json");
          }
          if (req.get_param_value("account_id") != "111122223333" || req.get_param_value("role_name") != "Crawler") {
            res.status = 403;
            return res.set_content(R"({"message":"No access"})", "application/json");
          }
          int seen;
          {
            std::lock_guard lock(mutex);
            seen = flaky["/sso"]++;
          }
          const bool first = seen == 0 && req.matches[2].matched;
          const auto expires = std::chrono::system_clock::now() + std::chrono::seconds(first ? 2 : 3600);
          res.set_content(
              fmt::format(R"({{"roleCredentials":{{"accessKeyId":"AKIDEXAMPLE","secretAccessKey":"{}",)"
                          R"("sessionToken":"session-1","expiration":{}}}}})",
                          first ? "expired" : "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                          std::chrono::duration_cast<std::chrono::milliseconds>(expires.time_since_epoch()).count()),
              "application/json");
        }));
    // SSO OIDC's CreateToken renewing an SSO login (/oidc/TOKEN/token, a JSON body): access token
    // TOKEN, expiring in an hour, and the new refresh token refresh-2, for client fixture-client
    // (secret fixture-secret) with the refresh token refresh-1; else 401 invalid_client or 400
    // invalid_grant. /oidc/TOKEN/slow/token answers after a second.
    server->Post(R"(/oidc/([^/]+)(/slow)?/token)", tracked([](const httplib::Request& req, httplib::Response& res) {
                   if (req.matches[2].matched) std::this_thread::sleep_for(std::chrono::seconds(1));
                   const auto has = [&req](const char* name, const char* value) {
                     return req.body.find(fmt::format(R"("{}":"{}")", name, value)) != std::string::npos;
                   };
                   auto refuse = [&res](int status, const char* error, const char* description) {
                     oauth_refusal(res, status, error, description);
                   };
                   if (!has("clientId", "fixture-client") || !has("clientSecret", "fixture-secret")) {
                     return refuse(401, "invalid_client", "Invalid client credentials");
                   }
                   if (!has("grantType", "refresh_token") || !has("refreshToken", "refresh-1")) {
                     return refuse(400, "invalid_grant", "Invalid refresh token provided");
                   }
                   res.set_content(fmt::format(R"({{"accessToken":"{}","tokenType":"Bearer","expiresIn":3600,)"
                                               R"("refreshToken":"refresh-2"}})",
                                               req.matches[1].str()),
                                   "application/json");
                 }));
    server->Get("/whoami", tracked([](const httplib::Request& req, httplib::Response& res) {
                  const std::string name = peer_certificate(req).common_name;
                  res.set_content(name.empty() ? "none" : name, "text/plain");
                }));
    server->Post("/oauth-token", tracked([this](const httplib::Request& req, httplib::Response& res) {
                   const int fail = req.has_param("fail") ? std::stoi(req.get_param_value("fail")) : 0;
                   const int from = req.has_param("from") ? std::stoi(req.get_param_value("from")) : 0;
                   int seen;
                   {
                     std::lock_guard lock(mutex);
                     seen = flaky["/oauth-token"]++;
                   }
                   auto refuse = [&res](int status, const char* error, const char* description) {
                     oauth_refusal(res, status, error, description);
                   };
                   if (req.has_param("delay")) {
                     std::this_thread::sleep_for(std::chrono::milliseconds(std::stoi(req.get_param_value("delay"))));
                   }
                   if (seen >= from && seen < from + fail) {
                     const int status = req.has_param("status") ? std::stoi(req.get_param_value("status")) : 503;
                     return refuse(status, "temporarily_unavailable", "The server is restarting");
                   }
                   httplib::Params form;
                   httplib::detail::parse_query_text(req.body, form);
                   auto field = [&form](const char* name) {
                     auto it = form.find(name);
                     return it == form.end() ? std::string() : it->second;
                   };
                   // Two clients: the second's id and secret hold what HTTP Basic must form-encode (RFC
                   // 6749 2.3.1), as this server decodes them.
                   auto known = [](const std::string& id, const std::string& secret) {
                     return (id == "sluice" && secret == "s3cret") || (id == "svc:1" && secret == "p@ss w+rd/=");
                   };
                   bool by_basic = false;
                   if (const std::string header = req.get_header_value("Authorization"); header.starts_with("Basic ")) {
                     const std::string decoded = base64_decode(header.substr(6));
                     const auto colon = decoded.find(':');
                     by_basic = colon != std::string::npos &&
                                known(httplib::detail::decode_url(decoded.substr(0, colon), true),
                                      httplib::detail::decode_url(decoded.substr(colon + 1), true));
                   }
                   const bool by_form = known(field("client_id"), field("client_secret"));
                   if (req.get_header_value("Content-Type") != "application/x-www-form-urlencoded") {
                     return refuse(400, "invalid_request", "The request must be a form");
                   }
                   const std::string grant = field("grant_type");
                   const bool public_client =
                       field("client_id") == "app" && !form.count("client_secret") && !req.has_header("Authorization");
                   const bool jwt = grant == "urn:ietf:params:oauth:grant-type:jwt-bearer";
                   const bool exchange = grant == "urn:ietf:params:oauth:grant-type:token-exchange";
                   const bool client_jwt =
                       field("client_assertion_type") == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
                   // An assertion's claims, if its signature and claims are good: from issuer `iss`, for
                   // this URL, of an hour at most (a client's: its sub is its iss too).
                   auto good_claims = [&](const std::string& assertion,
                                          std::string& error) -> std::optional<std::string> {
                     const auto claims =
                         verified_jwt(assertion, req.get_param_value("jwt_key"), req.get_param_value("cert"), error);
                     if (!claims) return std::nullopt;
                     const long long now = std::time(nullptr);
                     const std::string aud = claim(*claims, "aud"), iat = claim(*claims, "iat"),
                                       exp = claim(*claims, "exp");
                     if (claim(*claims, "iss") != req.get_param_value("iss") || iat.empty() || exp.empty() ||
                         std::stoll(exp) <= now || std::stoll(exp) - std::stoll(iat) > 3600 ||
                         std::stoll(iat) > now + 5 || claim(*claims, "jti").empty() ||
                         aud != fmt::format("http://{}{}", req.get_header_value("Host"), req.target) ||
                         (client_jwt && claim(*claims, "sub") != claim(*claims, "iss"))) {
                       error = "Invalid JWT claims";
                       return std::nullopt;
                     }
                     return claims;
                   };
                   // RFC 8705 2.1's clients, which prove themselves with their TLS certificate (its
                   // subject's common name registered), their id in the form and no secret.
                   static const std::map<std::string, std::string> tls_clients = {{"mtls", "sluice-client"},
                                                                                  {"mtls-other", "someone-else"}};
                   const auto tls_client = tls_clients.find(field("client_id"));
                   const bool by_certificate = tls_client != tls_clients.end() && !form.count("client_secret") &&
                                               !req.has_header("Authorization") && !client_jwt;
                   std::string bound_to;   // the certificate a tls_client_auth client's token is bound to
                   std::string jwt_scope;  // the assertion's scope and subject
                   std::string federated;  // a federated client's assertion
                   if (by_certificate) {
                     const PeerCertificate peer = peer_certificate(req);
                     if (peer.common_name.empty()) return refuse(401, "invalid_client", "No client certificate");
                     if (peer.common_name != tls_client->second) {
                       return refuse(401, "invalid_client", "The client certificate is not the client's");
                     }
                     bound_to = peer.thumbprint;
                   } else if (client_jwt && field("client_id") == "federated") {
                     // A federated credential: a token another issuer gave the client (opaque here:
                     // "fed-..." is trusted), named in the scope of the token issued for it.
                     if (!field("client_assertion").starts_with("fed-"))
                       return refuse(401, "invalid_client", "The client assertion is not trusted");
                     federated = field("client_assertion");
                   } else if (client_jwt) {  // RFC 7523 2.2: the client proves itself with a signed JWT
                     std::string error;
                     if (!good_claims(field("client_assertion"), error))
                       return refuse(401, "invalid_client", error.c_str());
                   } else if (jwt) {  // (no client authentication: the assertion's signature is it)
                     std::string error;
                     const auto claims = good_claims(field("assertion"), error);
                     if (!claims) return refuse(400, "invalid_grant", error.c_str());
                     jwt_scope = claim(*claims, "scope");
                     if (const std::string sub = claim(*claims, "sub"); !sub.empty()) jwt_scope += " sub:" + sub;
                   } else if (exchange && !by_basic && !form.count("client_id") && !form.count("client_secret")) {
                     // RFC 8693 without client authentication, as Google's STS takes it: the subject
                     // token is the credential
                   } else if (by_basic == by_form && !(public_client && grant == "refresh_token")) {
                     // neither, or both (RFC 6749 2.3: one way only)
                     res.set_header("WWW-Authenticate", R"(Basic realm="fixture")");
                     return refuse(401, "invalid_client", "Client authentication failed");
                   }
                   std::string refresh;  // the refresh token of the answer
                   if (grant == "refresh_token") {
                     refresh = field("refresh_token");
                     std::lock_guard lock(mutex);
                     if (!refresh.starts_with("rt-") || spent_refresh_tokens.count(refresh)) {
                       return refuse(400, "invalid_grant", "The refresh token is invalid or expired");
                     }
                     if (req.get_param_value("rotate") == "1") {
                       spent_refresh_tokens.insert(refresh);
                       refresh = fmt::format("rt-new-{}", ++refresh_tokens_issued);
                     }
                   } else if (exchange) {  // RFC 8693: an "ext-..." token is trusted, named in the scope
                     const std::string type = req.has_param("subject_type") ? req.get_param_value("subject_type")
                                                                            : "urn:ietf:params:oauth:token-type:jwt";
                     if (field("subject_token_type") != type ||
                         field("requested_token_type") != "urn:ietf:params:oauth:token-type:access_token") {
                       return refuse(400, "invalid_request", "Unexpected subject_token_type or requested_token_type");
                     }
                     if (!field("subject_token").starts_with("ext-"))
                       return refuse(400, "invalid_grant", "The subject token is not trusted");
                     federated = field("subject_token");
                   } else if (grant != "client_credentials" && !jwt) {
                     return refuse(400, "unsupported_grant_type",
                                   "Only client_credentials and refresh_token are supported");
                   }
                   const std::string life = req.has_param("life") ? req.get_param_value("life") : "3600";
                   const std::string scope =
                       (jwt ? jwt_scope
                            : field("scope") + (field("audience").empty() ? "" : " @" + field("audience"))) +
                       (federated.empty() ? "" : " by:" + federated);
                   std::string token;
                   {
                     std::lock_guard lock(mutex);
                     token = fmt::format("tok-{}", ++tokens_issued);
                     tokens[token] =
                         Token{std::chrono::steady_clock::now() +
                                   (life == "none" ? std::chrono::hours(24 * 365)
                                                   : std::chrono::milliseconds(std::llround(std::stod(life) * 1000))),
                               scope, bound_to};
                   }
                   res.set_content(
                       fmt::format(R"({{"access_token":"{}","token_type":"{}"{},"scope":"{}"{}}})", token,
                                   req.has_param("type") ? req.get_param_value("type") : "bearer",
                                   life == "none" ? "" : ",\"expires_in\":" + life, json_escape(scope),
                                   refresh.empty() ? "" : ",\"refresh_token\":\"" + json_escape(refresh) + '"'),
                       "application/json");
                 }));
    // Google's iamcredentials generateAccessToken (/impersonate/EMAIL:generateAccessToken, a JSON
    // POST): for a token /oauth-token issued (as Bearer), a token of service account EMAIL for the
    // body's "scope" list, expiring in `life` seconds (default 3600) as an RFC 3339 expireTime; its
    // scope "as:EMAIL" and the list. 401 UNAUTHENTICATED to another token, 403 PERMISSION_DENIED
    // unless EMAIL is reader@sluice-tests.iam.gserviceaccount.com.
    server->Post(R"(/impersonate/([^/:]+):generateAccessToken)",
                 tracked([this](const httplib::Request& req, httplib::Response& res) {
                   auto refuse = [&res](int code, const char* status, const std::string& message) {
                     res.status = code;
                     res.set_content(fmt::format(R"({{"error":{{"code":{},"message":"{}","status":"{}"}}}})", code,
                                                 message, status),
                                     "application/json");
                   };
                   const std::string authorization = req.get_header_value("Authorization");
                   const std::string token = authorization.starts_with("Bearer ") ? authorization.substr(7) : "";
                   const int life = req.has_param("life") ? std::stoi(req.get_param_value("life")) : 3600;
                   std::lock_guard lock(mutex);
                   auto it = tokens.find(token);
                   if (it == tokens.end() || std::chrono::steady_clock::now() >= it->second.expires) {
                     return refuse(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.");
                   }
                   const std::string email = req.matches[1].str();
                   if (email != "reader@sluice-tests.iam.gserviceaccount.com") {
                     return refuse(403, "PERMISSION_DENIED",
                                   "Permission 'iam.serviceAccounts.getAccessToken' denied on resource");
                   }
                   std::string scope = "as:" + email;
                   static const std::regex item(R"re("([^"]*)")re");
                   const auto list = req.body.find(R"("scope":[)");
                   const auto end = req.body.find(']', list);
                   if (list == std::string::npos || end == std::string::npos ||
                       req.body.find(R"("lifetime":"3600s")") == std::string::npos) {
                     return refuse(400, "INVALID_ARGUMENT", "Request contains an invalid argument.");
                   }
                   const std::string scopes = req.body.substr(list + 9, end - list - 9);
                   for (std::sregex_iterator m(scopes.begin(), scopes.end(), item), none; m != none; ++m) {
                     scope += ' ' + (*m)[1].str();
                   }
                   const std::string issued = fmt::format("imp-{}", ++tokens_issued);
                   tokens[issued] = Token{std::chrono::steady_clock::now() + std::chrono::seconds(life), scope, ""};
                   res.set_content(fmt::format(R"({{"accessToken":"{}","expireTime":"{:%Y-%m-%dT%H:%M:%S}Z"}})", issued,
                                               std::chrono::floor<std::chrono::seconds>(
                                                   std::chrono::system_clock::now() + std::chrono::seconds(life))),
                                   "application/json");
                 }));
    // An API that takes the tokens /oauth-token issued until they expire: the path, the token, its
    // scope and 200; 401 to any other. With revoke=1 every token issued so far is revoked first
    // (this request's too).
    server->Get(R"(/oauth-api/(.*))", tracked([this](const httplib::Request& req, httplib::Response& res) {
                  const std::string authorization = req.get_header_value("Authorization");
                  const std::string token = authorization.starts_with("Bearer ") ? authorization.substr(7) : "";
                  bool valid;
                  std::string scope, bound_to;
                  {
                    std::lock_guard lock(mutex);
                    if (req.get_param_value("revoke") == "1") tokens.clear();
                    auto it = tokens.find(token);
                    valid = it != tokens.end() && std::chrono::steady_clock::now() < it->second.expires;
                    if (valid) scope = it->second.scope, bound_to = it->second.bound_to;
                  }
                  // A certificate-bound token (RFC 8705 3) is good only with the certificate it was
                  // issued to.
                  if (valid && !bound_to.empty()) valid = peer_certificate(req).thumbprint == bound_to;
                  if (!valid) {
                    res.status = 401;
                    res.set_header("WWW-Authenticate", R"(Bearer error="invalid_token")");
                    res.set_content(R"({"error":"invalid_token"})", "application/json");
                    return;
                  }
                  if (req.matches[1] == "orders") {  // 95 orders, 20 a page, the next page's URL in the body
                    constexpr int kOrders = 95, kPer = 20;
                    const int page = req.has_param("page") ? std::max(1, std::stoi(req.get_param_value("page"))) : 1;
                    std::string orders;
                    for (int i = (page - 1) * kPer + 1; i <= std::min(kOrders, page * kPer); ++i) {
                      orders += fmt::format(R"({}{{"id":{},"customer":"customer{}","total":"{}.{:02d}","status":"{}",)"
                                            R"("created":"2026-11-{:02d}T09:30:00Z"}})",
                                            orders.empty() ? "" : ",", i, i * 7 % 13, i * 37 % 500, i * 11 % 100,
                                            i % 4 == 0 ? "refunded" : "paid", 1 + i % 28);
                    }
                    const std::string next = page * kPer < kOrders
                                                 ? fmt::format(R"("http://{}/oauth-api/orders?page={}")",
                                                               req.get_header_value("Host"), page + 1)
                                                 : "null";
                    res.set_content(fmt::format(R"({{"orders":[{}],"next":{}}})", orders, next), "application/json");
                    return;
                  }
                  res.set_content(fmt::format(R"({{"path":"{}","token":"{}","scope":"{}"{}}})",
                                              json_escape(req.matches[1].str()), json_escape(token), json_escape(scope),
                                              bound_to.empty() ? "" : R"(,"cnf":")" + bound_to + '"'),
                                  "application/json");
                }));
    server->Get("/echo", echo);
    server->Post("/echo", echo);
    server->Put("/echo", echo);
    server->Patch("/echo", echo);
    server->Delete("/echo", echo);
    server->Get("/__stats", [this](const httplib::Request&, httplib::Response& res) {
      std::string body = "{";
      std::lock_guard lock(mutex);
      for (const auto& [key, c] : counters) {
        if (body.size() > 1) body += ',';
        body += fmt::format(R"("{}":{{"requests":{},"current":{},"max_concurrent":{},"connections":{}}})",
                            json_escape(key), c.requests, c.current, c.max_concurrent, c.connections);
      }
      res.set_content(body + "}", "application/json");
    });
    server->Post("/__reset", [this](const httplib::Request&, httplib::Response& res) {
      reset();
      res.set_content("{}", "application/json");
    });
    server->Get(R"(/(.*))", tracked([this](const httplib::Request& req, httplib::Response& res) {
                  namespace fs = std::filesystem;
                  std::string rel = req.matches[1];
                  if (root.empty() || rel.find("..") != std::string::npos) {
                    res.status = 404;
                    return;
                  }
                  fs::path p = fs::path(root) / rel;
                  if (fs::is_directory(p)) p /= "index.html";
                  auto file = std::make_shared<ServedFile>();
                  if (int error = file->open(p); error != 0) {
                    // <path>.redirect holds where /<path> moved to (a site's http -> https, say).
                    std::string target;
                    if (error == ENOENT) error = read_whole(p.string() + ".redirect", target);
                    if (error == 0) {
                      res.set_redirect(target.substr(0, target.find('\n')), 301);
                      return;
                    }
                    return answer_unreadable(error, res);
                  }
                  // An If-None-Match that names the file's ETag gets 304 Not Modified with no
                  // body (a client re-fetching only what changed).
                  res.set_header("ETag", file->etag);
                  if (const std::string wanted = req.get_header_value("If-None-Match");
                      wanted == "*" || wanted.find(file->etag) != std::string::npos) {
                    res.status = 304;
                    return;
                  }
                  // <path>.content-type holds the Content-Type to send (a charset, say).
                  std::string type;
                  if (const int error = read_whole(p.string() + ".content-type", type); error == ENOENT) {
                    type = content_type_for(p);
                  } else if (error != 0) {
                    return answer_unreadable(error, res);
                  } else {
                    type.resize(std::min(type.find('\n'), type.size()));
                  }
                  if (file->fd < 0) {
                    res.set_content(std::move(file->content), type);
                    return;
                  }
                  // Sent as it is: cpp-httplib compresses a text body with brotli at its best
                  // quality, which takes seconds per megabyte (15 s for a 7.7 MB JSON file). A
                  // file cut short while it is sent ends the connection (the client sees it short).
                  res.set_content_provider(
                      file->size, type, [file](std::size_t offset, std::size_t length, httplib::DataSink& sink) {
                        char buffer[1 << 16];
                        ssize_t n;
                        do {
                          n = ::pread(file->fd, buffer, std::min(length, sizeof buffer), static_cast<off_t>(offset));
                        } while (n < 0 && errno == EINTR);
                        return n > 0 && sink.write(buffer, static_cast<std::size_t>(n));
                      });
                }));
  }

  void reset() {
    std::lock_guard lock(mutex);
    peers.clear();
    arrivals.clear();
    for (auto it = counters.begin(); it != counters.end();) {
      if (it->second.current == 0) {
        it = counters.erase(it);
      } else {
        it->second.requests = 0;
        it->second.connections = 0;
        it->second.max_concurrent = it->second.current;
        ++it;
      }
    }
    flaky.clear();
    ranged.clear();
    quotas.clear();
    tokens.clear();
    tokens_issued = 0;
  }

  void start_reset_listener() {
    reset_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(reset_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(reset_fd, 4096) != 0) {
      throw std::runtime_error("fixture server: cannot open the reset port");
    }
    socklen_t len = sizeof addr;
    ::getsockname(reset_fd, reinterpret_cast<sockaddr*>(&addr), &len);
    reset_port = ntohs(addr.sin_port);
    reset_thread = std::thread([this] {
      while (!stopping.load()) {
        int fd = ::accept(reset_fd, nullptr, nullptr);
        if (fd < 0) {
          if (stopping.load()) return;
          continue;
        }
        {
          std::lock_guard lock(mutex);
          ++counters["/reset"].requests;
          ++counters["*"].requests;
        }
        // Wait for the request so that the client sees a reset connection, not a failed connect: a
        // reset before the client has looked at its new socket fails the connect. On a loaded
        // machine the request can take over a second to come, so wait up to 10 s, in steps that
        // let the destructor stop the wait.
        pollfd readable{fd, POLLIN, 0};
        for (int step = 0; step < 100 && !stopping.load(); ++step) {
          if (::poll(&readable, 1, 100) != 0) break;
        }
        char buf[4096];
        (void)::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        linger l{1, 0};  // close with RST instead of FIN
        ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        ::close(fd);
      }
    });
  }
};

CertificateFiles write_self_signed(const std::string& dir) {
  SelfSigned s = self_signed();
  CertificateFiles files{(std::filesystem::path(dir) / "cert.pem").string(),
                         (std::filesystem::path(dir) / "key.pem").string()};
  std::ofstream(files.cert, std::ios::binary) << s.pem;
  std::ofstream(files.key, std::ios::binary) << pem_text(
      [&s](BIO* out) { return PEM_write_bio_PrivateKey(out, s.key.get(), nullptr, nullptr, 0, nullptr, nullptr); });
  return files;
}

FixtureServer::FixtureServer(std::string root, int port, int threads, bool tls, int keep_alive_seconds,
                             std::string address, bool client_certs)
    : impl_(std::make_unique<Impl>()) {
  in_addr parsed{};
  if (::inet_pton(AF_INET, address.c_str(), &parsed) != 1 || (ntohl(parsed.s_addr) >> 24) != 127) {
    throw std::runtime_error(fmt::format("fixture server: '{}' is not a loopback address (127.0.0.0/8)", address));
  }
  impl_->address = std::move(address);
  impl_->root = std::move(root);
  if (tls) {
    SelfSigned s = self_signed();
    X509_STORE* clients = nullptr;  // owned by the server from here on
    if (client_certs) {             // a client identity of its own, the one the server trusts
      SelfSigned client = self_signed("sluice-client");
      clients = X509_STORE_new();
      if (!clients || X509_STORE_add_cert(clients, client.cert.get()) != 1) {
        throw std::runtime_error("fixture server: cannot trust the client certificate");
      }
      impl_->client_cert_file = temp_file(client.pem);
      EVP_PKEY* key = client.key.get();
      impl_->client_key_file = temp_file(pem_text(
          [key](BIO* out) { return PEM_write_bio_PrivateKey(out, key, nullptr, nullptr, 0, nullptr, nullptr); }));
    }
    auto tls_server = std::make_unique<httplib::SSLServer>(s.cert.get(), s.key.get(), clients);  // copies both
    // A server that verifies clients needs a session id context, or OpenSSL answers a client that
    // resumes a session (libcurl does, on its next connection) with "internal error".
    static const unsigned char kContext[] = "sluice-fixture";
    if (client_certs && tls_server->is_valid() &&
        SSL_CTX_set_session_id_context(tls_server->ssl_context(), kContext, sizeof kContext - 1) != 1) {
      throw std::runtime_error("fixture server: cannot set the TLS session id context");
    }
    impl_->server_ptr = std::move(tls_server);
    if (!impl_->server_ptr->is_valid()) throw std::runtime_error("fixture server: TLS set-up failed");
    impl_->ca_file = temp_file(s.pem);
  } else {
    impl_->server_ptr = std::make_unique<httplib::Server>();
  }
  impl_->gzip_text = gzip(std::string("hello gzip\n"), 100);
  impl_->server_ptr->new_task_queue = [threads] { return new GrowingPool(static_cast<std::size_t>(threads)); };
  impl_->server_ptr->set_keep_alive_max_count(100000);
  // httplib gives each open connection a pool thread; idle keep-alive connections give theirs back
  // after this long.
  impl_->server_ptr->set_keep_alive_timeout(keep_alive_seconds);
  // httplib writes headers and body separately; with Nagle's algorithm on, the body then waits for
  // the client's delayed ACK: 40 ms per response on a reused connection.
  impl_->server_ptr->set_tcp_nodelay(true);
  impl_->routes();
  if (port == 0) {
    impl_->port = impl_->server_ptr->bind_to_any_port(impl_->address);
  } else if (impl_->server_ptr->bind_to_port(impl_->address, port)) {
    impl_->port = port;
  } else {
    impl_->port = -1;
  }
  if (impl_->port <= 0) {
    throw std::runtime_error(fmt::format("fixture server: cannot listen on {}:{}", impl_->address, port));
  }
  widen_backlog(impl_->port);
  try {  // a thread the system refuses (a limit of threads or memory) throws std::system_error
    impl_->thread = std::thread([this] { impl_->server_ptr->listen_after_bind(); });
    while (!impl_->server_ptr->is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    impl_->start_reset_listener();
  } catch (...) {
    stop();  // no destructor runs for a constructor that throws
    throw;
  }
}

FixtureServer::~FixtureServer() {
  stop();
}

void FixtureServer::stop() {
  impl_->stopping = true;
  impl_->server_ptr->stop();
  if (impl_->thread.joinable()) impl_->thread.join();
  if (impl_->reset_fd >= 0) ::shutdown(impl_->reset_fd, SHUT_RDWR);
  if (impl_->reset_thread.joinable()) impl_->reset_thread.join();
  if (impl_->reset_fd >= 0) ::close(impl_->reset_fd);
  for (const auto* file : {&impl_->ca_file, &impl_->client_cert_file, &impl_->client_key_file}) {
    if (!file->empty()) std::filesystem::remove(*file);
  }
}

int FixtureServer::port() const {
  return impl_->port;
}
std::string FixtureServer::url(const std::string& path) const {
  return fmt::format("{}://{}:{}{}", impl_->ca_file.empty() ? "http" : "https", impl_->address, impl_->port, path);
}
const std::string& FixtureServer::ca_file() const {
  return impl_->ca_file;
}

const std::string& FixtureServer::client_cert_file() const {
  return impl_->client_cert_file;
}

const std::string& FixtureServer::client_key_file() const {
  return impl_->client_key_file;
}
std::string FixtureServer::reset_url() const {
  return fmt::format("http://127.0.0.1:{}/", impl_->reset_port);
}

std::map<std::string, Counter> FixtureServer::counters() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->counters;
}

Counter FixtureServer::counter(const std::string& key) const {
  std::lock_guard lock(impl_->mutex);
  auto it = impl_->counters.find(key);
  return it == impl_->counters.end() ? Counter{} : it->second;
}

std::vector<std::chrono::steady_clock::time_point> FixtureServer::arrivals(const std::string& key) const {
  std::lock_guard lock(impl_->mutex);
  auto it = impl_->arrivals.find(key);
  return it == impl_->arrivals.end() ? std::vector<std::chrono::steady_clock::time_point>{} : it->second;
}

void FixtureServer::reset_counters() {
  impl_->reset();
}

}  // namespace sluice::fixture
