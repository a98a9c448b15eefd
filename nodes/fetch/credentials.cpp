#include "credentials.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>

#include <curl/curl.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <simdjson.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../text.hpp"
#include "sluice/json.hpp"

namespace sluice::fetch {

namespace {

// `path` open for reading, or nullopt and `error`: it is a folder (not `what`), or cannot be read.
std::optional<std::ifstream> open_to_read(const std::string& path, std::string_view what, std::string& error) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    error = fmt::format("'{}' is a folder, not {}", path, what);
    return std::nullopt;
  }
  // Not a FIFO, whose open() waits for a writer, nor a device such as /dev/zero, which never ends.
  if (const auto status = std::filesystem::status(path, ec); !ec && !std::filesystem::is_regular_file(status)) {
    error = fmt::format("'{}' is not a regular file (a pipe or a device), not {}", path, what);
    return std::nullopt;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = fmt::format("cannot read '{}': {}", path, std::strerror(errno));
    return std::nullopt;
  }
  return in;
}

// What the file at `path` holds, or nullopt and `error`, as open_to_read(); a file larger than
// kMaxReadBytes is none of the small files read so (keys, certificates, credentials, tokens).
constexpr std::size_t kMaxReadBytes = 4 << 20;
std::optional<std::string> read_whole(const std::string& path, std::string_view what, std::string& error) {
  auto in = open_to_read(path, what, error);
  if (!in) return std::nullopt;
  std::string text;
  char chunk[1 << 14];
  while (in->read(chunk, sizeof chunk) || in->gcount() > 0) {
    text.append(chunk, static_cast<std::size_t>(in->gcount()));
    if (text.size() > kMaxReadBytes) {
      error = fmt::format("'{}' is larger than {} MiB: not {}", path, kMaxReadBytes >> 20, what);
      return std::nullopt;
    }
  }
  return text;
}

}  // namespace

bool read_aws_credentials(const std::string& path, const std::string& profile, FetchOptions::Aws& aws,
                          std::string& error, bool config, AwsProfileRole* role) {
  const auto text = read_whole(path, config ? "an AWS config file" : "an AWS credentials file", error);
  if (!text) return false;
  std::vector<std::string> profiles;  // as named, for the message when `profile` is not among them
  bool in_profile = false, found = false;
  std::string key_id, secret, token, process, other;  // `other`: a key that names credentials fetch does not fetch
  AwsProfileRole assumed;
  const std::pair<const char*, std::string*> role_settings[] = {
      {"role_arn", &assumed.arn},
      {"source_profile", &assumed.source_profile},
      {"credential_source", &assumed.credential_source},
      {"external_id", &assumed.external_id},
      {"role_session_name", &assumed.session_name},
      {"duration_seconds", &assumed.duration},
      {"mfa_serial", &assumed.mfa_serial},
      {"web_identity_token_file", &assumed.web_identity_token_file},
      {"sso_session", &assumed.sso_session},
      {"sso_start_url", &assumed.sso_start_url},
      {"sso_region", &assumed.sso_region},
      {"sso_account_id", &assumed.sso_account_id},
      {"sso_role_name", &assumed.sso_role_name}};
  int line_number = 0;
  std::string_view rest = *text;
  while (!rest.empty()) {
    const std::size_t end = rest.find('\n');
    const std::string_view raw = rest.substr(0, end);
    rest.remove_prefix(end == std::string_view::npos ? rest.size() : end + 1);
    ++line_number;
    const std::string_view line = nodes::trim(raw);
    // Blank lines, comments, and indented lines (a nested setting's, as the AWS CLI writes them).
    if (line.empty() || line[0] == '#' || line[0] == ';' || std::isspace(static_cast<unsigned char>(raw[0]))) continue;
    if (line[0] == '[') {
      if (line.back() != ']') {
        error = fmt::format("'{}' line {}: a section's name ends with ']'", path, line_number);
        return false;
      }
      std::string name(nodes::trim(line.substr(1, line.size() - 2)));
      if (config && name.starts_with("profile ")) name = std::string(nodes::trim(std::string_view(name).substr(8)));
      profiles.push_back(name);
      in_profile = name == profile;
      found = found || in_profile;
      continue;
    }
    const std::size_t eq = line.find('=');
    if (eq == std::string_view::npos) {
      error = fmt::format("'{}' line {}: not a 'name = value' line", path, line_number);
      return false;
    }
    if (!in_profile) continue;
    const std::string name = nodes::to_lower(nodes::trim(line.substr(0, eq)));
    const std::string value(nodes::trim(line.substr(eq + 1)));
    if (name == "aws_access_key_id") {
      key_id = value;
    } else if (name == "aws_secret_access_key") {
      secret = value;
    } else if (name == "aws_session_token") {
      token = value;
    } else if (name == "credential_process") {
      process = value;
    } else if (other.empty() && name.starts_with("sso_") && !role) {
      other = name;
    }
    for (const auto& [setting, value_of] : role_settings) {
      if (name == setting) *value_of = value;
    }
  }
  if (!found) {
    std::string names;
    for (const auto& name : profiles) names += (names.empty() ? "" : ", ") + name;
    error = fmt::format("'{}' has no profile [{}] ({})", path, profile,
                        profiles.empty() ? "it has none" : "its profiles: " + names);
    return false;
  }
  if (role && (!assumed.arn.empty() || assumed.sso())) {
    *role = std::move(assumed);
    return true;
  }
  if ((key_id.empty() || secret.empty()) && !process.empty()) {
    aws.process = std::move(process);  // for the caller to run
    return true;
  }
  if (key_id.empty() || secret.empty()) {
    error = fmt::format("profile [{}] in '{}' has no {}", profile, path,
                        key_id.empty() ? "aws_access_key_id" : "aws_secret_access_key");
    if (!other.empty()) {
      error += fmt::format(
          " (its {} is for the AWS CLI and SDKs to get credentials with, which fetch does not do: `aws configure "
          "export-credentials --profile {} --format env` gives them for the environment)",
          other, profile);
    }
    return false;
  }
  aws.key_id = std::move(key_id);
  aws.secret = std::move(secret);
  aws.session_token = std::move(token);
  return true;
}

std::string sso_cache_file(const std::string& home, std::string_view key) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(key.data(), key.size(), digest, &size, EVP_sha1(), nullptr);
  std::string name;
  for (unsigned int i = 0; i < size; ++i) name += fmt::format("{:02x}", digest[i]);
  return fmt::format("{}/.aws/sso/cache/{}.json", home, name);
}

std::optional<SsoToken> read_sso_token(const std::string& path, std::string& error) {
  auto text = read_whole(path, "an SSO login's cache", error);
  if (!text) return std::nullopt;
  std::string wrong;
  auto token = parse_sso_token(*text, wrong);
  if (!token) error = fmt::format("'{}' {}", path, wrong);
  return token;
}

std::optional<std::string> read_token_file(const std::string& path, std::string_view what, std::string_view holds,
                                           std::string& error) {
  auto text = read_whole(path, what, error);
  if (!text) return std::nullopt;
  const std::string token(nodes::trim(*text, " \t\r\n"));
  if (token.empty()) {
    error = fmt::format("'{}' is empty: it should hold {}", path, holds);
    return std::nullopt;
  }
  if (token.size() > kTokenMax || std::any_of(token.begin(), token.end(), [](char c) {
        return c == ' ' || static_cast<unsigned char>(c) < 0x20 || c == 0x7F;
      })) {
    error = fmt::format("'{}' does not hold one token (no spaces or line breaks inside)", path);
    return std::nullopt;
  }
  return token;
}

std::optional<std::string> read_client_assertion(const std::string& path, std::string& error) {
  return read_token_file(path, "a file with a client assertion", "the token the client proves itself with", error);
}

std::optional<std::string> read_subject_token(const std::string& path, std::string& error) {
  return read_token_file(path, "a file with a subject token", "the token to exchange for an access token", error);
}

std::optional<std::string> read_refresh_token(const std::string& path, std::string& error) {
  auto text = read_whole(path, "a file with a refresh token", error);
  if (!text) return std::nullopt;
  std::string token = text->substr(0, text->find('\0'));
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ')) token.pop_back();
  if (token.size() > kTokenMax || !header_value_ok(token) || token.find(' ') != std::string::npos) {
    error = fmt::format("'{}' does not hold one refresh token (one line, no spaces)", path);
    return std::nullopt;
  }
  if (token.empty()) {
    error = fmt::format("'{}' is empty: put the refresh token the authorization gave in it", path);
    return std::nullopt;
  }
  std::error_code ec;
  const auto folder = std::filesystem::absolute(path, ec).parent_path();
  if (::access(path.c_str(), W_OK) != 0 || ::access(folder.c_str(), W_OK | X_OK) != 0) {
    error = fmt::format("cannot write '{}' or its folder: {} (a new refresh token the server issues goes there)", path,
                        std::strerror(errno));
    return std::nullopt;
  }
  return token;
}

namespace {

std::string base64url(std::string_view bytes) {
  std::string out((bytes.size() + 2) / 3 * 4 + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(std::max(n, 0)));
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) c = c == '+' ? '-' : c == '/' ? '_' : c;
  return out;
}

// The private key in `pem` (the file `path`'s), or null and `error`. One with a passphrase is
// refused: OpenSSL's default callback would ask for it on the terminal.
std::unique_ptr<EVP_PKEY, void (*)(EVP_PKEY*)> private_key(const std::string& pem, const std::string& path,
                                                           std::string& error) {
  std::unique_ptr<EVP_PKEY, void (*)(EVP_PKEY*)> key(nullptr, EVP_PKEY_free);
  if (pem.find("ENCRYPTED") != std::string::npos) {
    error =
        fmt::format("'{}' holds an encrypted key: give it without a passphrase (openssl pkey -in KEY -out FILE)", path);
    return key;
  }
  std::unique_ptr<BIO, int (*)(BIO*)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  if (bio)
    key.reset(PEM_read_bio_PrivateKey(
        bio.get(), nullptr, [](char*, int, int, void*) { return 0; }, nullptr));
  if (!key) error = fmt::format("'{}' holds no private key in PEM (-----BEGIN PRIVATE KEY-----)", path);
  return key;
}

// The first certificate in `pem` (the file `path`'s), or null and `error`.
std::unique_ptr<X509, void (*)(X509*)> certificate(const std::string& pem, const std::string& path,
                                                   std::string& error) {
  std::unique_ptr<BIO, int (*)(BIO*)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  std::unique_ptr<X509, void (*)(X509*)> x509(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr,
                                              X509_free);
  if (!x509) error = fmt::format("'{}' holds no certificate in PEM (-----BEGIN CERTIFICATE-----)", path);
  return x509;
}

// Whether the private key in `key_pem` (the file `key_path`'s) is the certificate's; else `error`.
bool certificate_key(X509* x509, const std::string& cert_path, const std::string& key_pem, const std::string& key_path,
                     std::string& error) {
  auto pkey = private_key(key_pem, key_path, error);
  if (!pkey) return false;
  if (X509_check_private_key(x509, pkey.get()) != 1) {
    error = fmt::format("the key in '{}' is not the certificate's in '{}'", key_path, cert_path);
    return false;
  }
  return true;
}

}  // namespace

// A proxy URL as records and messages show it: scheme://host:port, without credentials.
std::string proxy_shown(const std::string& url) {
  const auto scheme = url.find("://");
  const std::size_t start = scheme == std::string::npos ? 0 : scheme + 3;
  const std::size_t end = std::min(url.find_first_of("/?#", start), url.size());
  const auto at = url.rfind('@', end);  // the last one: a password may hold an '@' unescaped
  const std::size_t host = at == std::string::npos || at < start ? start : at + 1;
  return url.substr(0, start) + url.substr(host, end - host);
}

std::string check_proxy_credentials(const std::string& url, bool ntlm) {
  const std::string shown = proxy_shown(url);
  if (url.starts_with("socks")) {
    return fmt::format("{} is a SOCKS proxy, whose user and password go as SOCKS5 sends them", shown);
  }
  CURLU* u = curl_url();
  if (!u) throw std::bad_alloc();
  std::string user, password;
  if (curl_url_set(u, CURLUPART_URL, url.c_str(), CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK) {
    for (auto [part, out] : {std::pair{CURLUPART_USER, &user}, std::pair{CURLUPART_PASSWORD, &password}}) {
      char* text = nullptr;
      if (curl_url_get(u, part, &text, CURLU_URLDECODE) == CURLUE_OK && text) *out = text;
      curl_free(text);
    }
  }
  curl_url_cleanup(u);
  if (user.empty() || password.empty()) {
    return fmt::format("{} names no user and password (http://user:password@host:port)", shown);
  }
  if (ntlm && (nodes::beyond_ascii(user) || nodes::beyond_ascii(password))) {
    return fmt::format(
        "the user or password of {} is beyond ASCII, which NTLM takes only here (libcurl sends "
        "each byte as a character of its own): it would never match",
        shown);
  }
  return "";
}

bool check_client_certificate(const std::string& cert, const std::string& key, std::string& error) {
  const auto cert_text = read_whole(cert, "a certificate file", error);
  if (!cert_text) return false;
  auto x509 = certificate(*cert_text, cert, error);
  if (!x509) return false;
  const auto key_text = key.empty() ? cert_text : read_whole(key, "a key file", error);
  return key_text && certificate_key(x509.get(), cert, *key_text, key.empty() ? cert : key, error);
}

bool read_jwt_certificate(JwtKey& key, const std::string& key_file, const std::string& path, std::string& error) {
  const auto text = read_whole(path, "a certificate file", error);
  if (!text) return false;
  auto x509 = certificate(*text, path, error);
  if (!x509 || !certificate_key(x509.get(), path, key.pem, key_file, error)) return false;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  auto thumbprint = [&](const EVP_MD* md) {
    if (X509_digest(x509.get(), md, digest, &size) != 1) return std::string();
    return base64url(std::string_view(reinterpret_cast<const char*>(digest), size));
  };
  key.x5t = thumbprint(EVP_sha1());
  key.x5t_s256 = thumbprint(EVP_sha256());
  if (key.x5t.empty() || key.x5t_s256.empty()) {
    error = fmt::format("'{}': its thumbprint cannot be computed", path);
    return false;
  }
  return true;
}

std::optional<JwtKey> read_jwt_key(const std::string& path, std::string& error) {
  auto read = read_whole(path, "a key file", error);
  if (!read) return std::nullopt;
  std::string& text = *read;
  JwtKey key;
  if (const auto first = text.find_first_not_of(" \t\r\n"); first != std::string::npos && text[first] == '{') {
    simdjson::dom::parser parser;
    simdjson::dom::object object;
    std::string_view pem, email, id, uri;
    if (parser.parse(text).get_object().get(object) || object["private_key"].get(pem)) {
      error = fmt::format("'{}' is not a service account's JSON key (an object with private_key)", path);
      return std::nullopt;
    }
    key.pem = pem;
    if (!object["client_email"].get(email)) key.client_email = email;
    if (!object["private_key_id"].get(id)) key.key_id = id;
    if (!object["token_uri"].get(uri)) key.token_uri = uri;
  } else {
    key.pem = std::move(text);
  }
  auto pkey = private_key(key.pem, path, error);
  if (!pkey) return std::nullopt;
  if (EVP_PKEY_get_base_id(pkey.get()) != EVP_PKEY_RSA) {
    error = fmt::format("'{}' holds a private key that is not RSA's (the JWT is signed RS256)", path);
    return std::nullopt;
  }
  return key;
}

std::string jwt_assertion(const JwtKey& key, const FetchOptions::OAuth2& o, std::int64_t now, std::uint64_t nonce,
                          std::string& error) {
  const FetchOptions::OAuth2::Jwt& j = *o.jwt;
  std::string header = R"({"alg":"RS256","typ":"JWT")";
  if (const std::string& id = j.key_id.empty() ? key.key_id : j.key_id; !id.empty()) {
    header += R"(,"kid":)";
    append_json_string(header, id);
  }
  if (!key.x5t.empty()) header += fmt::format(R"(,"x5t":"{}","x5t#S256":"{}")", key.x5t, key.x5t_s256);
  header += '}';
  // private_key_jwt: the client's own assertion (RFC 7523 3: iss and sub its id); else the grant's.
  const std::string& issuer = o.private_key_jwt ? o.client_id : j.issuer.empty() ? key.client_email : j.issuer;
  const std::string& subject = o.private_key_jwt ? o.client_id : j.subject;
  std::string claims = R"({"iss":)";
  append_json_string(claims, issuer);
  claims += R"(,"aud":)";
  append_json_string(claims, j.audience.empty() ? o.token_url : j.audience);
  if (!subject.empty()) {
    claims += R"(,"sub":)";
    append_json_string(claims, subject);
  }
  if (!o.scope.empty() && !o.private_key_jwt) {
    claims += R"(,"scope":)";
    append_json_string(claims, o.scope);
  }
  // Valid for an hour from now (Google's longest), and unique (jti: a server may refuse a replay).
  claims += fmt::format(R"(,"iat":{},"exp":{},"jti":"{:016x}{:x}"}})", now, now + 3600, nonce, now);
  std::string signed_part = base64url(header) + '.' + base64url(claims);
  auto pkey = private_key(key.pem, o.jwt->key_file, error);  // (checked when the loop was made)
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  const auto* data = reinterpret_cast<const unsigned char*>(signed_part.data());
  std::size_t size = 0;  // the signature's: asked for first, then written
  std::string signature;
  bool signed_ok = pkey && ctx && EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, pkey.get()) == 1 &&
                   EVP_DigestSign(ctx.get(), nullptr, &size, data, signed_part.size()) == 1;
  if (signed_ok) {
    signature.resize(size);
    signed_ok = EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &size, data,
                               signed_part.size()) == 1;
    signature.resize(size);
  }
  if (!signed_ok) {
    if (pkey) error = "the key cannot sign (RS256)";
    return "";
  }
  return signed_part + '.' + base64url(signature);
}

bool replace_private_file(const std::string& path, std::string_view text, std::string& error) {
  const std::string temp = fmt::format("{}.sluice-{}.new", path, ::getpid());
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    error = fmt::format("cannot create '{}': {}", temp, std::strerror(errno));
    return false;
  }
  const bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  const int write_error = errno;
  if (::close(fd) != 0 || !written || ::rename(temp.c_str(), path.c_str()) != 0) {
    error = fmt::format("cannot write '{}': {}", path, std::strerror(written ? errno : write_error));
    ::unlink(temp.c_str());
    return false;
  }
  return true;
}

std::optional<std::vector<std::pair<std::string, FetchOptions::Auth>>> read_netrc(const std::string& path,
                                                                                  std::string& error) {
  const auto text = read_whole(path, "a netrc file", error);
  if (!text) return std::nullopt;
  std::size_t at = 0;
  int line = 1;
  // The next token into `token`; false at the end. Quoted tokens as curl reads them. A '#' where a
  // keyword may stand starts a comment to the end of the line; a `value` (a name, login, password)
  // may begin with one.
  auto next = [&](std::string& token, bool value = false) {
    token.clear();
    while (at < text->size()) {
      const char c = (*text)[at];
      if (c == '#' && !value) {  // a comment to the end of the line
        while (at < text->size() && (*text)[at] != '\n') ++at;
        continue;
      }
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
      if (c == '\n') ++line;
      ++at;
    }
    if (at >= text->size()) return false;
    if ((*text)[at] == '"') {
      for (++at; at < text->size() && (*text)[at] != '"'; ++at) {
        if ((*text)[at] == '\\' && at + 1 < text->size()) ++at;
        if ((*text)[at] == '\n') ++line;
        token += (*text)[at];
      }
      ++at;  // the closing quote
      return true;
    }
    while (at < text->size() && !std::isspace(static_cast<unsigned char>((*text)[at]))) token += (*text)[at++];
    return true;
  };
  std::vector<std::pair<std::string, FetchOptions::Auth>> out;
  std::optional<std::pair<std::string, FetchOptions::Auth>> entry;
  int entry_line = 0;
  auto fail = [&](const std::string& what) {
    error = fmt::format("'{}' line {}: {}", path, line, what);
    return std::nullopt;
  };
  // The entry read so far goes into `out`; false and `error` when it lacks a login or password.
  auto finish = [&] {
    if (!entry) return true;
    if (entry->second.user.empty() || entry->second.password.empty()) {
      error = fmt::format("'{}' line {}: {} has no {}", path, entry_line,
                          entry->first.empty() ? "the default entry" : "machine " + entry->first,
                          entry->second.user.empty() ? "login" : "password");
      return false;
    }
    out.push_back(std::move(*entry));
    entry.reset();
    return true;
  };
  std::string token, value;
  while (next(token)) {
    if (token == "machine" || token == "default") {
      if (!finish()) return std::nullopt;
      entry_line = line;
      std::string name;
      if (token == "machine" && !next(name, true)) return fail("'machine' without a name");
      entry.emplace(nodes::to_lower(name), FetchOptions::Auth{});
    } else if (token == "login" || token == "password" || token == "account") {
      if (!entry) return fail(fmt::format("'{}' before any machine or default", token));
      if (!next(value, true)) return fail(fmt::format("'{}' without a value", token));
      if (token == "login") entry->second.user = value;
      if (token == "password") entry->second.password = value;
    } else if (token == "macdef") {  // a macro of ftp(1): its lines up to an empty one
      if (!next(value, true)) return fail("'macdef' without a name");
      const std::size_t end = std::min(text->find("\n\n", at), text->size());
      line += static_cast<int>(std::count(text->begin() + static_cast<std::ptrdiff_t>(at),
                                          text->begin() + static_cast<std::ptrdiff_t>(end), '\n'));
      at = end;
    } else {
      return fail(fmt::format("'{}' is out of place (machine, default, login, password, account or macdef)", token));
    }
  }
  if (!finish()) return std::nullopt;
  return out;
}

std::optional<std::vector<std::string>> read_cookie_file(const std::string& path, std::string& error) {
  auto in = open_to_read(path, "a cookie file", error);
  if (!in) return std::nullopt;
  std::vector<std::string> cookies;
  std::size_t expired = 0;
  const auto now =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  std::string line;
  for (int number = 1; std::getline(*in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (number == 1 && line.starts_with("\xEF\xBB\xBF")) line.erase(0, 3);
    const bool http_only = line.starts_with("#HttpOnly_");
    if (line.find_first_not_of(" \t") == std::string::npos || (line.starts_with('#') && !http_only)) continue;
    std::vector<std::string_view> fields;
    std::string_view rest = line;
    while (true) {
      const auto tab = rest.find('\t');
      fields.push_back(rest.substr(0, tab));
      if (tab == std::string_view::npos) break;
      rest.remove_prefix(tab + 1);
    }
    std::int64_t expiry = 0;
    const auto parsed = fields.size() >= 5
                            ? std::from_chars(fields[4].data(), fields[4].data() + fields[4].size(), expiry)
                            : std::from_chars_result{nullptr, std::errc::invalid_argument};
    if ((fields.size() != 7 && fields.size() != 6) || parsed.ec != std::errc() ||
        parsed.ptr != fields[4].data() + fields[4].size()) {
      error = fmt::format(
          "'{}' line {} is not a cookie: the Netscape format has 7 fields separated by tabs (domain, "
          "include subdomains, path, secure, expiry, name, value)",
          path, number);
      return std::nullopt;
    }
    if (expiry != 0 && expiry < now) ++expired;
    cookies.push_back(line);
  }
  if (!cookies.empty() && expired == cookies.size()) {
    error = fmt::format("every cookie in '{}' has expired: export them again", path);
    return std::nullopt;
  }
  return cookies;
}

bool is_header_name(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
  });
}

bool header_value_ok(std::string_view value) {
  return value.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

bool on_ec2(const std::string& sys) {
  auto first_line = [](const std::string& path) {
    std::ifstream in(path);
    std::string line;
    std::getline(in, line);
    return std::string(nodes::trim(line));
  };
  if (first_line(sys + "/devices/virtual/dmi/id/sys_vendor") == "Amazon EC2" ||
      first_line(sys + "/devices/virtual/dmi/id/board_vendor") == "Amazon EC2")
    return true;
  const std::string uuid = first_line(sys + "/hypervisor/uuid");
  return uuid.size() >= 3 && nodes::iequals(std::string_view(uuid).substr(0, 3), "ec2");
}

bool iam_name(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("+=,.@_-").find(c) != std::string_view::npos;
  });
}

}  // namespace sluice::fetch
