#include "aws_sigv4.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <ctime>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "../text.hpp"

namespace sluice::fetch {

namespace {

// Lower-case hex of `size` bytes of a hash.
std::string to_hex(const unsigned char* sum, unsigned int size) {
  std::string out;
  out.reserve(2 * size);
  for (unsigned int i = 0; i < size; ++i) out += fmt::format("{:02x}", sum[i]);
  return out;
}

// The segments of an absolute path ("/a/b/" -> a, b, ""), split at '/'.
std::vector<std::string_view> path_segments(std::string_view path) {
  std::vector<std::string_view> out;
  path.remove_prefix(std::min<std::size_t>(1, path.size()));
  while (true) {
    const std::size_t slash = path.find('/');
    out.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) return out;
    path.remove_prefix(slash + 1);
  }
}

}  // namespace

std::string aws_canonical_url(std::string_view url) {
  url = url.substr(0, url.find('#'));
  const std::size_t question = url.find('?');
  const std::string_view target = url.substr(0, question);
  const std::size_t authority = target.find("://");
  const std::size_t path_at = target.find('/', authority == std::string_view::npos ? 0 : authority + 3);
  std::string out(target.substr(0, path_at));
  // The path: each segment decoded and encoded again; "." and ".." resolved here (RFC 3986 5.2.4),
  // after the decoding ("%2E" is a dot), so that libcurl, which would resolve them, sends it as is.
  std::vector<std::string> kept;
  const auto segments = path_segments(path_at == std::string_view::npos ? "/" : target.substr(path_at));
  for (std::size_t i = 0; i < segments.size(); ++i) {
    std::string segment;
    append_url_encoded(segment, nodes::percent_decoded(segments[i]));
    const bool last = i + 1 == segments.size();
    if (segment == "." || segment == "..") {
      if (segment == ".." && !kept.empty()) kept.pop_back();
      if (last) kept.emplace_back();  // "/a/b/.." is "/a/"
      continue;
    }
    kept.push_back(std::move(segment));
  }
  for (const auto& segment : kept) (out += '/') += segment;
  if (kept.empty()) out += '/';
  if (question == std::string_view::npos) return out;
  std::vector<std::pair<std::string, std::string>> params;
  std::string_view query = url.substr(question + 1);
  while (!query.empty()) {
    const std::string_view part = query.substr(0, query.find('&'));
    query.remove_prefix(std::min(query.size(), part.size() + 1));
    if (part.empty()) continue;
    const std::size_t eq = part.find('=');
    std::pair<std::string, std::string> param;
    append_url_encoded(param.first, nodes::percent_decoded(part.substr(0, eq)));
    if (eq != std::string_view::npos) append_url_encoded(param.second, nodes::percent_decoded(part.substr(eq + 1)));
    params.push_back(std::move(param));
  }
  std::sort(params.begin(), params.end());
  char separator = '?';
  for (const auto& [name, value] : params) {
    out += separator;
    out += name;
    out += '=';
    out += value;
    separator = '&';
  }
  return out;
}

std::string aws_host(std::string_view url) {
  const std::size_t authority = url.find("://");
  if (authority == std::string_view::npos) return std::string();
  const std::string_view scheme = url.substr(0, authority);
  std::string_view host = url.substr(authority + 3);
  host = host.substr(0, host.find_first_of("/?#"));
  if (const std::size_t at = host.rfind('@'); at != std::string_view::npos) host.remove_prefix(at + 1);
  const std::size_t colon = host.rfind(':');
  if (colon != std::string_view::npos && host.find(']', colon) == std::string_view::npos) {
    const std::string_view port = host.substr(colon + 1);
    if (port.empty() || (nodes::iequals(scheme, "http") && port == "80") ||
        (nodes::iequals(scheme, "https") && port == "443")) {
      host = host.substr(0, colon);
    }
  }
  return std::string(host);
}

std::string aws_authorization(const FetchOptions::Aws& aws, std::string_view method, std::string_view url,
                              const std::vector<std::string>& headers, std::string_view payload_hash,
                              std::string_view amz_date) {
  const std::size_t authority = url.find("://");
  const std::size_t path_at = url.find('/', authority == std::string_view::npos ? 0 : authority + 3);
  std::string_view path = path_at == std::string_view::npos ? "/" : url.substr(path_at);
  std::string_view query;
  if (const std::size_t question = path.find('?'); question != std::string_view::npos) {
    query = path.substr(question + 1);
    path = path.substr(0, question);
  }
  std::string canonical(method);
  canonical += '\n';
  if (aws.service.starts_with("s3")) {
    canonical += path;  // encoded once, as sent
  } else {
    // Encoded twice: each segment as sent encoded again ('%' is "%25"), the empty ones left out.
    const std::size_t start = canonical.size();
    for (std::string_view segment : path_segments(path)) {
      if (segment.empty()) continue;
      canonical += '/';
      append_url_encoded(canonical, segment);
    }
    if (canonical.size() == start || (path.size() > 1 && path.ends_with('/'))) canonical += '/';
  }
  canonical += '\n';
  canonical += query;
  canonical += '\n';
  // The headers: names in lower case, sorted; values trimmed, inner runs of spaces made one; the
  // values of a name given twice joined by ','.
  std::vector<std::pair<std::string, std::string>> signed_headers;
  for (std::string_view line : headers) {
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string value;
    for (char c : line.substr(colon + 1)) {
      const bool space = c == ' ' || c == '\t';
      if (space && (value.empty() || value.back() == ' ')) continue;
      value += space ? ' ' : c;
    }
    if (!value.empty() && value.back() == ' ') value.pop_back();
    if (value.empty()) continue;  // a header libcurl leaves out
    signed_headers.emplace_back(nodes::to_lower(line.substr(0, colon)), std::move(value));
  }
  std::stable_sort(signed_headers.begin(), signed_headers.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::string names;
  for (std::size_t i = 0; i < signed_headers.size(); ++i) {
    const auto& [name, value] = signed_headers[i];
    if (i > 0 && signed_headers[i - 1].first == name) {
      canonical.pop_back();  // the '\n' after the value before
      (canonical += ',') += value;
    } else {
      ((canonical += name) += ':') += value;
      if (!names.empty()) names += ';';
      names += name;
    }
    canonical += '\n';
  }
  ((canonical += '\n') += names) += '\n';
  canonical += payload_hash;

  const std::string_view date = amz_date.substr(0, 8);
  const std::string scope = fmt::format("{}/{}/{}/aws4_request", date, aws.region, aws.service);
  const std::string to_sign = fmt::format("AWS4-HMAC-SHA256\n{}\n{}\n{}", amz_date, scope, sha256_hex(canonical));
  // The signing key: HMAC-SHA256 of the date with "AWS4" and the secret, then of the region, the
  // service and "aws4_request", each with the one before; the signature is the string to sign's.
  auto hmac = [](std::string_view secret, std::string_view text) {
    unsigned char sum[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    if (!HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
              reinterpret_cast<const unsigned char*>(text.data()), text.size(), sum, &size)) {
      throw std::bad_alloc();
    }
    return std::string(reinterpret_cast<const char*>(sum), size);
  };
  std::string key = hmac("AWS4" + aws.secret, date);
  for (std::string_view part :
       {std::string_view(aws.region), std::string_view(aws.service), std::string_view("aws4_request")})
    key = hmac(key, part);
  const std::string signature = hmac(key, to_sign);
  return fmt::format(
      "AWS4-HMAC-SHA256 Credential={}/{}, SignedHeaders={}, Signature={}", aws.key_id, scope, names,
      to_hex(reinterpret_cast<const unsigned char*>(signature.data()), static_cast<unsigned int>(signature.size())));
}

std::string sha256_hex(std::string_view bytes) {
  unsigned char sum[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(bytes.data(), bytes.size(), sum, &size, EVP_sha256(), nullptr);
  return to_hex(sum, size);
}

std::string amz_date(std::chrono::system_clock::time_point now) {
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[20];
  std::strftime(text, sizeof text, "%Y%m%dT%H%M%SZ", &utc);
  return text;
}

std::string hex_digest(EVP_MD_CTX* digest) {
  unsigned char sum[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_DigestFinal_ex(digest, sum, &size);
  return to_hex(sum, size);
}

}  // namespace sluice::fetch
