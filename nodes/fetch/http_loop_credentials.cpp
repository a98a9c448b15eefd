// HttpLoop's credentials that expire, kept fresh on its I/O thread: oauth2's access token (asked for
// with a transfer of the loop's own, shared by the fetch nodes whose settings are the same) and
// aws_sigv4's keys (read again when their credentials file changes, or renewed by a
// credential_process on a thread of the node's own).
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <simdjson.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <utility>

#include "../stop_wait.hpp"
#include "../text.hpp"
#include "aws_process.hpp"
#include "aws_sigv4.hpp"
#include "credentials.hpp"
#include "sluice/json.hpp"
#include "transfer.hpp"

namespace sluice::fetch {

namespace {

// oauth2: the next token is asked for a tenth of the token's life before it expires, at most this.
constexpr std::chrono::seconds kTokenRefreshAhead{60};
// The life asked for an instance metadata service's session token: the longest it gives (6 hours).
constexpr std::chrono::seconds kInstanceTokenLife{21600};
// An SSO login is renewed when its token expires in less than this, and a failed renewal of a token
// still valid tried again after the pause (the AWS CLI's figures).
constexpr std::chrono::minutes kSsoRenewalAhead{15};
constexpr std::chrono::seconds kSsoRenewalPause{30};

// Why a request for credentials (oauth2's token, a container endpoint's keys) got no answer:
// "timeout: <libcurl's words>"; `retryable` as the node's retries take its reason (a lack of
// sockets always: it is this process's, not the server's).
std::string transfer_failure(const HttpLoop::Transfer& t, CURLcode code, bool no_socket, const RetryPolicy& retry,
                             bool& retryable) {
  const Reason reason = classify(code, t.too_large);
  std::string detail = t.error[0] ? std::string(t.error) : std::string(curl_easy_strerror(code));
  if (no_socket) detail = "no socket: " + out_of_descriptors(t.socket_errno);
  if (reason == Reason::too_large) detail = fmt::format("an answer larger than {} KiB", kTokenMax / 1024);
  retryable = no_socket || retry.retries_reason(reason);
  return fmt::format("{}: {}", reason_name(reason), detail);
}

// The shared token of these oauth2 settings: the one the process's loops with the same settings
// hold, or a new one (shared_token()'s map forgets a token when its last loop goes).
std::shared_ptr<HttpLoop::SharedToken> shared_token(const FetchOptions::OAuth2& o) {
  std::string key = fmt::format("{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}", o.token_url, o.client_id, o.client_secret,
                                o.scope, o.basic, o.refresh_token, o.refresh_token_file, o.client_assertion_file,
                                o.subject_token_file, o.subject_token_type);
  if (o.jwt) {
    key += fmt::format("\njwt\n{}\n{}\n{}\n{}\n{}", o.jwt->key_file, o.jwt->issuer, o.jwt->subject, o.jwt->audience,
                       o.jwt->key_id);
  }
  for (const auto& [name, value] : o.params) key += fmt::format("\n{}={}", name, value);
  static std::mutex mutex;
  static std::map<std::string, std::weak_ptr<HttpLoop::SharedToken>> tokens;
  std::lock_guard lock(mutex);
  std::erase_if(tokens, [](const auto& entry) { return entry.second.expired(); });
  auto& weak = tokens[key];
  auto token = weak.lock();
  if (!token) weak = token = std::make_shared<HttpLoop::SharedToken>();
  return token;
}

}  // namespace

// With client_auth: basic the Basic credentials, form-encoded first (RFC 6749 2.3.1, as Go's oauth2
// package does); the refresh token grant's token, from the pipeline or its file (read again: the
// file may have changed since the pipeline was checked), unless another loop has it already.
void HttpLoop::prepare_token_request() {
  const FetchOptions::OAuth2& o = *opt_.oauth2;
  if (o.basic && !o.client_secret.empty()) {
    append_url_encoded(token_.user, o.client_id);
    append_url_encoded(token_.password, o.client_secret);
  }
  std::string error;
  if (o.jwt) {
    token_.jwt = read_jwt_key(o.jwt->key_file, error);
    if (!token_.jwt) throw NodeError("oauth2.jwt.key_file: " + error);
    if (!o.jwt->certificate.empty() && !read_jwt_certificate(*token_.jwt, o.jwt->key_file, o.jwt->certificate, error))
      throw NodeError("oauth2.jwt.certificate: " + error);
    if (o.token_url.empty())
      opt_.oauth2->token_url = token_.jwt->token_uri;  // a Google key's (checked with the pipeline)
  }
  token_.host = parse_host_key(o.token_url, error).value_or(o.token_url);  // checked when the node was made
  auto shared = shared_token(o);
  std::lock_guard lock(shared->mutex);
  if (shared->form.empty()) {
    shared->refresh = o.refresh_token;
    if (!o.refresh_token_file.empty()) {
      auto refresh = read_refresh_token(o.refresh_token_file, error);
      if (!refresh) throw NodeError("oauth2.refresh_token_file: " + error);
      shared->refresh = std::move(*refresh);
    }
    build_token_form(*shared);
  }
  token_.shared = std::move(shared);
}

// RFC 6749 4.4.2's form (client credentials) or 6's (a refresh token); the client's id and secret in
// it with client_auth: post, and a public client's id (no secret: 2.1, 3.2.1).
void HttpLoop::build_token_form(SharedToken& s) const {
  const FetchOptions::OAuth2& o = *opt_.oauth2;
  const bool jwt_grant = o.jwt && !o.private_key_jwt;
  const bool exchange = !o.subject_token_file.empty();
  s.form = jwt_grant           ? "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"
           : exchange          ? "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange"
           : s.refresh.empty() ? "grant_type=client_credentials"
                               : "grant_type=refresh_token";
  auto add = [&s](std::string_view name, std::string_view value) {
    s.form += '&';
    append_url_encoded(s.form, name);
    s.form += '=';
    append_url_encoded(s.form, value);
  };
  if (!s.refresh.empty()) add("refresh_token", s.refresh);
  if (exchange) {  // the subject token follows, read for each request
    add("requested_token_type", "urn:ietf:params:oauth:token-type:access_token");
    add("subject_token_type", o.subject_token_type);
  }
  if (!o.scope.empty() && !jwt_grant) add("scope", o.scope);  // (the grant's JWT carries it in its claims)
  for (const auto& [name, value] : o.params) add(name, value);
  if (o.private_key_jwt) {  // the client's assertion follows, made for each request (start_token())
    add("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
  } else if (!o.client_assertion_file.empty()) {  // the assertion follows, read for each request
    add("client_id", o.client_id);
    add("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
  } else if (o.client_id.empty()) {  // (the JWT bearer grant without client authentication)
  } else if (o.client_secret.empty()) {
    add("client_id", o.client_id);
  } else if (!o.basic) {
    add("client_id", o.client_id);
    add("client_secret", o.client_secret);
  }
}

std::string HttpLoop::rotate_refresh_token(SharedToken& s, std::string_view refresh) const {
  const FetchOptions::OAuth2& o = *opt_.oauth2;
  s.refresh = refresh;
  build_token_form(s);
  if (o.refresh_token_file.empty()) {
    if (std::exchange(s.told_rotated, true)) return "";
    return fmt::format(
        "oauth2: {} issued a new refresh token, used for the rest of this run; the pipeline's "
        "refresh_token may no longer be good: refresh_token_file keeps the newest one",
        hide_credentials(o.token_url));
  }
  // A few bytes, at most once per token's life: written (and synced) on this thread, whose transfers
  // wait for it meanwhile, under the shared token's lock (one writer at a time).
  std::string error;
  if (replace_private_file(o.refresh_token_file, std::string(refresh) + '\n', error)) return "";
  return fmt::format(
      "oauth2: {} issued a new refresh token, and it could not be kept: {}; the next run may have "
      "to be authorized again",
      hide_credentials(o.token_url), error);
}

void HttpLoop::give_up_token_request() {
  token_.impersonating = false;
  if (!std::exchange(token_.asking, false)) return;
  SharedToken& s = *token_.shared;
  std::lock_guard lock(s.mutex);
  if (s.asker == this) s.asker = nullptr;
  wake_token_sharers(s);
}

void HttpLoop::wake_token_sharers(SharedToken& s) {
  for (HttpLoop* loop : s.loops) {
    if (loop != this) loop->wake();
  }
}

HttpLoop::~HttpLoop() {
  if (thread_.joinable()) stop();
  aws_stop_.request_stop();
  if (aws_thread_.joinable()) aws_thread_.join();
  if (token_.shared) {
    give_up_token_request();
    std::lock_guard lock(token_.shared->mutex);
    std::erase(token_.shared->loops, this);
  }
  stop_cache();
  for (auto& [easy, t] : active_) curl_multi_remove_handle(multi_, easy);
  active_.clear();
  idle_.clear();  // cleans the easy handles up, before the share they may use
  if (template_) curl_easy_cleanup(template_);
  if (multi_) curl_multi_cleanup(multi_);
  if (share_) curl_share_cleanup(share_);
  curl_slist_free_all(base_headers_);
}

bool HttpLoop::token_usable(Clock::time_point now) {
  SharedToken& s = *token_.shared;
  std::unique_lock lock(s.mutex);
  if (token_.generation != s.generation) {
    token_.header = s.header;
    token_.generation = s.generation;
  }
  const bool valid = !s.header.empty() && now < s.expires_at;
  const bool due = !valid || now >= s.refresh_at;
  // (A graceful stop starts no job, so asks for no token: drop_unstarted().)
  if (due && !s.asker && !winding_down_.load() && (!s.failure || now >= s.failed_until)) {
    s.asker = this;
    token_.asking = true;
    lock.unlock();
    start_token(now);
    lock.lock();
  }
  if (valid) return true;
  if (s.failure && !s.asker) {  // no token to be had for now
    const std::string failure = *s.failure;
    lock.unlock();
    fail_waiting(Reason::auth, failure);
  }
  return false;
}

// RFC 6749 4.4.2: a POST of the form, the client authenticated with HTTP Basic or by the id and
// secret in the form (prepare_token_request()). Not redirected: the secret goes to token_url only.
// A token of the file at `path` (`read` reads it) appended to the token request's form as `name`: read
// again for each request, as its issuer replaces it before it expires (a small file, once per token).
// false when it cannot be read: the request is not sent, and fails as one that got no answer would.
bool HttpLoop::add_file_token(std::string& form, const std::string& path, TokenFileReader read, std::string_view name) {
  std::string error;
  const auto token = read(path, error);
  if (!token) {
    token_failed(fmt::format("auth: no access token from {}: oauth2.{}_file: {}",
                             hide_credentials(opt_.oauth2->token_url), name, error),
                 true, {});
    return false;
  }
  form += fmt::format("&{}=", name);
  append_url_encoded(form, *token);
  return true;
}

void HttpLoop::start_token(Clock::time_point now) {
  const FetchOptions::OAuth2& o = *opt_.oauth2;
  auto t = take_transfer(o.token_url);
  CURL* e = t->easy;
  t->token = true;
  t->headers = curl_slist_append(nullptr, "Accept: application/json");
  t->headers = curl_slist_append(t->headers, "Content-Type: application/x-www-form-urlencoded");
  if (!agent_line_.empty()) t->headers = curl_slist_append(t->headers, agent_line_.c_str());
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
  curl_easy_setopt(e, CURLOPT_POST, 1L);
  std::string form;
  {
    std::lock_guard lock(token_.shared->mutex);
    form = token_.shared->form;
  }
  if (token_.jwt) {  // a new assertion for each request: its time and id are its own
    std::string error;
    const std::string assertion = jwt_assertion(
        *token_.jwt, o,
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count(),
        rng_(), error);
    if (assertion.empty()) {
      recycle(std::move(t));
      return token_failed(fmt::format("auth: no access token from {}: the JWT cannot be signed: {}",
                                      hide_credentials(o.token_url), error),
                          false, {});
    }
    form += (o.private_key_jwt ? "&client_assertion=" : "&assertion=") + assertion;  // (base64url: nothing to encode)
  } else if (!o.client_assertion_file.empty() &&
             !add_file_token(form, o.client_assertion_file, read_client_assertion, "client_assertion")) {
    return recycle(std::move(t));
  }
  if (!o.subject_token_file.empty() &&
      !add_file_token(form, o.subject_token_file, read_subject_token, "subject_token")) {
    return recycle(std::move(t));
  }
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(form.size()));
  curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, form.c_str());
  if (!token_.user.empty()) {  // client_auth: basic, with a secret
    curl_easy_setopt(e, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
    curl_easy_setopt(e, CURLOPT_USERNAME, token_.user.c_str());
    curl_easy_setopt(e, CURLOPT_PASSWORD, token_.password.c_str());
  }
  curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(0));
  t->max_body = kTokenMax;
  token_.asked_at = now;
  curl_multi_add_handle(multi_, e);
  active_.emplace(e, std::move(t));
}

namespace {

// The JSON object `text` as simdjson reads it, or an error.
simdjson::simdjson_result<simdjson::dom::object> json_object(simdjson::dom::parser& parser, const std::string& text) {
  return parser.parse(text).get_object();
}

// RFC 6749 5.2: an error answer's "error" and "error_description", as "invalid_client (Client
// authentication failed)"; "" when the body has neither.
std::string token_error(const std::string& body) {
  simdjson::dom::parser parser;
  simdjson::dom::object object;
  if (json_object(parser, body).get(object)) return "";
  std::string_view error, description;
  if (object["error"].get(error)) return "";
  std::string text(error.substr(0, 200));
  if (!object["error_description"].get(description)) text += fmt::format(" ({})", description.substr(0, 500));
  return header_value_ok(text) ? text : "";
}

}  // namespace

// RFC 6749 5.1: {"access_token": "...", "token_type": "Bearer", "expires_in": 3600}; expires_in may
// be missing (the token lasts until a 401 says otherwise), and some servers send it as a string.
void HttpLoop::finish_token(Transfer& t, CURLcode code) {
  if (token_.impersonating) return finish_impersonation(t, code);
  const FetchOptions::OAuth2& o = *opt_.oauth2;
  const std::string from = fmt::format("auth: no access token from {}", hide_credentials(o.token_url));
  long status = 0;
  curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &status);
  const bool no_socket = out_of_sockets(t, code);
  if (t.refused_ip.empty() && !no_socket) count_transfer(stats_of(token_.host), t.easy, status, t.body.size());
  if (token_unanswered(t, code, no_socket, from, o.token_url)) return;
  if (status < 200 || status >= 300) {
    const std::string why = token_error(t.body);
    return token_failed(fmt::format("{}: HTTP {}{}", from, status, why.empty() ? "" : ": " + why),
                        opt_.retry.retries_status(status), retry_after(t.easy, status));
  }
  simdjson::dom::parser parser;
  simdjson::dom::object object;
  std::string_view token, type;
  if (json_object(parser, t.body).get(object) || object["access_token"].get(token) || token.empty()) {
    return token_failed(from + ": the answer is not a JSON object with an access_token", false, {});
  }
  if (!object["token_type"].get(type) && !nodes::iequals(type, "bearer")) {
    return token_failed(
        fmt::format("{}: token_type '{}' is not Bearer, the only type fetch sends", from, type.substr(0, 100)), false,
        {});
  }
  if (!header_value_ok(token)) return token_failed(from + ": the access_token holds a line break", false, {});
  SharedToken& s = *token_.shared;
  // RFC 6749 6: a new refresh token replaces the one sent (which the server may have voided), kept
  // even if the rest of the answer is of no use.
  if (std::string_view refresh; !object["refresh_token"].get(refresh) && !refresh.empty()) {
    std::string said;
    {
      std::lock_guard lock(s.mutex);
      if (s.refresh.empty() || refresh == s.refresh) {  // (client credentials: a refresh token is not used)
      } else if (header_value_ok(refresh) && refresh.size() <= kTokenMax &&
                 refresh.find(' ') == std::string_view::npos) {
        said = rotate_refresh_token(s, refresh);
      } else {
        said = fmt::format("oauth2: {} issued a new refresh token that is not one line of text; kept the old one",
                           hide_credentials(o.token_url));
      }
    }
    if (!said.empty()) notice(std::move(said));
  }
  // Its life, in seconds: a number, or a string of digits.
  double life = 0;
  if (auto field = object["expires_in"]; !field.error()) {
    std::string_view text;
    if (field.get(life) &&
        (field.get(text) || std::from_chars(text.data(), text.data() + text.size(), life).ec != std::errc{})) {
      return token_failed(from + ": expires_in is not a number of seconds", false, {});
    }
  }
  if (!o.impersonation_url.empty()) return start_impersonation(token);
  std::optional<nanoseconds> lifetime;
  if (life > 0 && std::isfinite(life) && life < 1e9) {
    lifetime = std::chrono::duration_cast<nanoseconds>(std::chrono::duration<double>(life));
  }
  token_received(token, lifetime);
}

bool HttpLoop::token_unanswered(Transfer& t, CURLcode code, bool no_socket, const std::string& from,
                                const std::string& url) {
  if (!t.refused_ip.empty()) {
    token_failed(from + ": " + private_message(url, t.refused_ip), false, {});
  } else if (code != CURLE_OK) {
    bool retryable = false;
    const std::string why = transfer_failure(t, code, no_socket, opt_.retry, retryable);
    token_failed(fmt::format("{}: {}", from, why), retryable, {});
  } else {
    return false;
  }
  return true;
}

void HttpLoop::token_received(std::string_view token, std::optional<nanoseconds> lifetime) {
  token_.asking = false;
  token_.attempts = 0;
  SharedToken& s = *token_.shared;
  std::lock_guard lock(s.mutex);
  s.header = fmt::format("Authorization: Bearer {}", token);
  ++s.generation;
  s.asker = nullptr;
  s.failure.reset();
  if (lifetime) {
    s.expires_at = token_.asked_at + *lifetime;
    s.refresh_at = s.expires_at - std::min<nanoseconds>(kTokenRefreshAhead, *lifetime / 10);
  } else {  // no expiry given: used until a request gets 401 with it
    s.expires_at = s.refresh_at = Clock::time_point::max();
  }
  wake_token_sharers(s);
}

// As Google's auth libraries ask iamcredentials' generateAccessToken: a JSON POST with the grant's
// token as Bearer, the scope as a list, an hour's lifetime.
void HttpLoop::start_impersonation(std::string_view token) {
  const FetchOptions::OAuth2& o = *opt_.oauth2;
  token_.impersonating = true;
  std::string body = R"({"scope":[)";
  for (std::size_t at = 0; at < o.scope.size();) {  // (space-separated, as oauth2's scope is)
    const std::size_t end = std::min(o.scope.find(' ', at), o.scope.size());
    if (end > at) {
      if (body.back() != '[') body += ',';
      append_json_string(body, std::string_view(o.scope).substr(at, end - at));
    }
    at = end + 1;
  }
  body += R"(],"lifetime":"3600s"})";
  auto t = own_request(
      o.impersonation_url,
      {"Accept: application/json", "Content-Type: application/json", fmt::format("Authorization: Bearer {}", token)},
      "POST", body);
  t->token = true;
  CURL* e = t->easy;
  curl_multi_add_handle(multi_, e);
  active_.emplace(e, std::move(t));
}

// {"accessToken": "...", "expireTime": "2026-12-07T02:00:00Z"}; an error as Google gives it:
// {"error": {"code": 403, "message": "...", "status": "PERMISSION_DENIED"}}.
void HttpLoop::finish_impersonation(Transfer& t, CURLcode code) {
  const FetchOptions::OAuth2& o = *opt_.oauth2;
  token_.impersonating = false;
  const std::string from = fmt::format("auth: no access token from {}", hide_credentials(o.impersonation_url));
  long status = 0;
  curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &status);
  if (token_unanswered(t, code, out_of_sockets(t, code), from, o.impersonation_url)) return;
  simdjson::dom::parser parser;
  simdjson::dom::object object;
  const bool parsed = !json_object(parser, t.body).get(object);
  if (status < 200 || status >= 300) {
    std::string said;
    simdjson::dom::object error;
    std::string_view name, message;
    if (parsed && !object["error"].get_object().get(error)) {
      if (!error["status"].get(name)) said = std::string(name.substr(0, 100));
      if (!error["message"].get(message)) said += fmt::format(" ({})", message.substr(0, 500));
    }
    if (!header_value_ok(said)) said.clear();
    return token_failed(fmt::format("{}: HTTP {}{}", from, status, said.empty() ? "" : ": " + said),
                        opt_.retry.retries_status(status), retry_after(t.easy, status));
  }
  std::string_view token, expire;
  if (!parsed || object["accessToken"].get(token) || token.empty() || !header_value_ok(token)) {
    return token_failed(from + ": the answer is not a JSON object with an accessToken", false, {});
  }
  std::optional<nanoseconds> lifetime;
  if (!object["expireTime"].get(expire)) {  // (none, or not a time: used until a 401)
    if (const auto until = parse_rfc3339(expire)) {
      lifetime = std::chrono::duration_cast<nanoseconds>(*until - std::chrono::system_clock::now()) +
                 (Clock::now() - token_.asked_at);
    }
  }
  token_received(token, lifetime);
}

// A failed request for a token: asked for again after the node's backoff (or Retry-After) while
// `retryable` and attempts are left; else the jobs waiting for one fail with `message`, and so do
// those that come until recovery_timeout has passed.
void HttpLoop::token_failed(std::string message, bool retryable, std::optional<nanoseconds> wait) {
  const auto now = Clock::now();
  if (retryable && ++token_.attempts < opt_.retry.attempts && !cancel_.load() && !winding_down_.load()) {
    timers_.emplace(now + wait.value_or(opt_.retry.backoff(token_.attempts + 1, rng_)),
                    Timer{nullptr, {}, false, true});
    return;
  }
  if (token_.attempts > 1) message += fmt::format(" ({})", attempts_text(token_.attempts));
  token_.asking = false;
  token_.attempts = 0;
  bool serving = false;
  {
    SharedToken& s = *token_.shared;
    std::lock_guard lock(s.mutex);
    s.asker = nullptr;
    s.failed_until = now + opt_.breaker_recovery;
    serving = !s.header.empty() && now < s.expires_at;
    s.failure = message;
    wake_token_sharers(s);  // their waiting jobs fail too
  }
  if (serving) notice(fmt::format("{}; the token in use serves until it expires", message));
}

namespace {

// What changes when a file is written again: its modification time (ns), size and inode; "" when it
// cannot be looked at.
std::string file_stamp(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "";
  return fmt::format("{}.{}:{}:{}", st.st_mtim.tv_sec, st.st_mtim.tv_nsec, st.st_size, st.st_ino);
}

}  // namespace

void HttpLoop::reload_aws_credentials(Clock::time_point now) {
  if (now < aws_checked_) return;
  aws_checked_ = now + std::chrono::seconds(1);
  FetchOptions::Aws& aws = *opt_.aws;
  const std::string stamp = file_stamp(aws.credentials_file);
  if (aws_file_stamp_.empty()) aws_file_stamp_ = stamp;  // the first look: as the node was made from it
  if (stamp.empty() || stamp == aws_file_stamp_) return;
  aws_file_stamp_ = stamp;
  FetchOptions::Aws fresh = aws;
  std::string error;
  AwsProfileRole role;
  if (!read_aws_credentials(aws.credentials_file, aws.profile, fresh, error, false, &role)) {
    if (error != aws_file_error_) {
      notice(
          fmt::format("aws_sigv4: the credentials file changed but cannot be used: {}; the credentials read "
                      "before sign on",
                      error));
    }
    aws_file_error_ = std::move(error);
    return;
  }
  aws_file_error_.clear();
  if (!fresh.process.empty() || !role.arn.empty() || role.sso()) {  // (its keys are the old ones still)
    notice(
        fmt::format("aws_sigv4: profile [{}] in '{}' now names {}, which this run does not switch to; the "
                    "credentials read before sign on",
                    aws.profile, aws.credentials_file,
                    !role.arn.empty() ? "a role (role_arn)"
                    : role.sso()      ? "an SSO login"
                                      : "a credential_process"));
    return;
  }
  if (fresh.key_id == aws.key_id && fresh.secret == aws.secret && fresh.session_token == aws.session_token) return;
  aws = std::move(fresh);
  notice(fmt::format("aws_sigv4: new credentials of profile [{}] in '{}' sign from now on", aws.profile,
                     aws.credentials_file));
}

void HttpLoop::refresh_aws_keys(std::string command, std::chrono::system_clock::time_point expires) {
  const std::stop_token stop = aws_stop_.get_token();
  auto next = refresh_time(expires, std::chrono::system_clock::now());
  std::string said;  // the last failure told, so that a command failing alike every 30 s is told once
  while (true) {
    if (nodes::sleep_until_stopped(stop, next)) return;
    std::string error;
    auto keys = run_credential_process(command, stop, error);
    if (stop.stop_requested()) return;
    const auto now = std::chrono::system_clock::now();
    if (keys && keys->expires && *keys->expires <= now) {  // asked again, it would say the same at once
      error = "the credentials it printed have expired already";
      keys.reset();
    }
    if (!keys) {
      if (error != said) {
        notice(
            fmt::format("aws_sigv4: credential_process '{}' gave no new credentials: {}; it runs again every "
                        "30 s, and the credentials it gave before sign on{}",
                        command, error, now >= expires ? " (they have expired)" : ""));
        said = std::move(error);
      }
      next = now + std::chrono::seconds(30);
      continue;
    }
    said.clear();
    const auto expiration = keys->expires;
    {
      std::lock_guard lock(aws_mutex_);
      aws_fresh_ = std::move(keys);
    }
    aws_has_fresh_.store(true, std::memory_order_release);
    if (!expiration) return;  // they do not expire
    expires = *expiration;
    next = refresh_time(expires, now);
  }
}

void HttpLoop::take_fresh_aws_keys() {
  std::optional<ProcessCredentials> fresh;
  {
    std::lock_guard lock(aws_mutex_);
    fresh = std::exchange(aws_fresh_, std::nullopt);
    aws_has_fresh_.store(false, std::memory_order_relaxed);
  }
  if (!fresh) return;
  FetchOptions::Aws& aws = *opt_.aws;
  if (aws.process_is_source()) {  // the role's keys from STS sign on, and are asked for with these when due
    aws.source = {std::move(fresh->key_id), std::move(fresh->secret), std::move(fresh->session_token)};
    return notice(fmt::format("aws_sigv4: new credentials from credential_process '{}' assume role {} from now on",
                              aws.process, aws.roles.front().arn));
  }
  aws.key_id = std::move(fresh->key_id);
  aws.secret = std::move(fresh->secret);
  aws.session_token = std::move(fresh->session_token);
  notice(fmt::format("aws_sigv4: new credentials from credential_process '{}' sign from now on", aws.process));
}

bool HttpLoop::endpoint_keys_usable(Clock::time_point now) {
  EndpointKeys& k = endpoint_keys_;
  // (A graceful stop starts no job, so asks for no keys: drop_unstarted().)
  if (!k.asking && now >= k.renew_at && !winding_down_.load() && (!k.failure || now >= k.failed_until)) {
    start_endpoint_keys();
  }
  if (now < k.expires_at) return true;
  if (k.failure && !k.asking) fail_waiting(Reason::auth, *k.failure);  // no keys to be had for now
  return false;
}

// As the AWS SDKs ask: a GET, with the Authorization the environment gives.
void HttpLoop::start_endpoint_keys() {
  const FetchOptions::Aws& aws = *opt_.aws;
  endpoint_keys_.asking = true;
  endpoint_keys_.link = 0;
  endpoint_keys_.assuming = false;
  if (aws.kind == FetchOptions::Aws::Endpoint::assume_role) {
    if (aws_has_fresh_.load(std::memory_order_acquire)) take_fresh_aws_keys();  // a credential_process's
    endpoint_keys_.source = aws.source;
    return start_assume_role();
  }
  if (aws.kind == FetchOptions::Aws::Endpoint::instance) {
    endpoint_keys_.token_new = false;
    return start_instance_keys();
  }
  if (aws.kind == FetchOptions::Aws::Endpoint::sso) return start_sso_keys();
  if (aws.kind == FetchOptions::Aws::Endpoint::sts) {  // through the node's proxy, if any: STS is a public API
    std::string error;
    auto token = read_token_file(aws.endpoint_token_file, "a web identity token file", "the web identity token",
                                 error);  // read for each request: Kubernetes renews it
    if (!token) {
      return endpoint_keys_failed(
          fmt::format("aws_sigv4: no credentials from {}: the web identity token file: {}", keys_source(), error), true,
          {});
    }
    std::string form = "Action=AssumeRoleWithWebIdentity&Version=2011-06-15";
    for (const auto& [name, value] : {std::pair<std::string_view, std::string_view>{"RoleArn", aws.role_arn},
                                      {"RoleSessionName", aws.role_session},
                                      {"WebIdentityToken", *token}}) {
      form += '&';
      form += name;
      form += '=';
      append_url_encoded(form, value);
    }
    return ask_for_keys(aws.endpoint, {"Content-Type: application/x-www-form-urlencoded"}, "POST", form, true);
  }
  std::string authorization = aws.endpoint_token;
  if (!aws.endpoint_token_file.empty()) {  // read again each time: the platform replaces it
    std::string error;
    auto token = read_token_file(aws.endpoint_token_file, "the container's authorization token file",
                                 "the token of the container's credentials endpoint", error);
    if (!token) {
      return endpoint_keys_failed(
          fmt::format("aws_sigv4: no credentials from {}: AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: {}", aws.endpoint,
                      error),
          true, {});
    }
    authorization = std::move(*token);
  }
  std::vector<std::string> lines{"Accept: application/json"};
  if (!authorization.empty()) lines.push_back("Authorization: " + authorization);
  ask_for_keys(aws.endpoint, lines);
}

// STS's AssumeRole of the round's next role (a profile's), as the AWS CLI asks it: a form POST
// signed with the keys the round got before (the source's at first) for STS in the node's region
// (us-east-1 for the global endpoint); through the node's proxy.
void HttpLoop::start_assume_role() {
  const FetchOptions::Aws& aws = *opt_.aws;
  EndpointKeys& k = endpoint_keys_;
  const FetchOptions::Aws::Role& role = aws.roles[k.link++];
  k.assuming = true;
  std::string form = "Action=AssumeRole&Version=2011-06-15";
  const std::string duration = role.duration ? std::to_string(role.duration) : "";
  for (const auto& [name, value] : {std::pair<std::string_view, std::string_view>{"RoleArn", role.arn},
                                    {"RoleSessionName", role.session},
                                    {"ExternalId", role.external_id},
                                    {"DurationSeconds", duration}}) {
    if (value.empty()) continue;
    form += '&';
    form += name;
    form += '=';
    append_url_encoded(form, value);
  }
  const std::string url = aws_canonical_url(aws.sts);
  FetchOptions::Aws signer;
  signer.service = "sts";
  signer.region = aws_host(url) == "sts.amazonaws.com" ? "us-east-1" : aws.region;
  signer.key_id = k.source.key_id;
  signer.secret = k.source.secret;
  const std::string date = amz_date(std::chrono::system_clock::now());
  const std::string payload_hash = sha256_hex(form);
  std::vector<std::string> lines{"Content-Type: application/x-www-form-urlencoded", "Host: " + aws_host(url),
                                 "x-amz-date: " + date, "x-amz-content-sha256: " + payload_hash};
  if (!k.source.session_token.empty()) lines.push_back("x-amz-security-token: " + k.source.session_token);
  lines.push_back("Authorization: " + aws_authorization(signer, "POST", url, lines, payload_hash, date));
  ask_for_keys(url, lines, "POST", form, true);
}

// As the AWS SDKs ask an instance's metadata service (IMDSv2): a PUT for a session token, unless
// one is held or the service gave none before (IMDSv1); a GET of the role's name; a GET of its keys.
void HttpLoop::start_instance_keys() {
  EndpointKeys& k = endpoint_keys_;
  const std::string& base = opt_.aws->endpoint;
  if (!k.v1 && (k.token.empty() || Clock::now() >= k.token_until)) {
    k.step = EndpointKeys::Step::token;
    return ask_for_keys(base + "/latest/api/token",
                        {fmt::format("X-aws-ec2-metadata-token-ttl-seconds: {}", kInstanceTokenLife.count())}, "PUT");
  }
  std::vector<std::string> lines;
  if (!k.v1) lines.push_back("X-aws-ec2-metadata-token: " + k.token);
  const std::string roles = base + "/latest/meta-data/iam/security-credentials/";
  k.step = k.role.empty() ? EndpointKeys::Step::role : EndpointKeys::Step::keys;
  ask_for_keys(k.role.empty() ? roles : roles + k.role, lines);
}

// Not redirected, and not refused as a private address (private_addresses: the endpoint is named by
// the environment, not by a scraped URL); unless `proxied`, never through a proxy (the machine's
// own service).
void HttpLoop::ask_for_keys(const std::string& url, const std::vector<std::string>& lines, std::string_view method,
                            std::string_view body, bool proxied) {
  auto t = own_request(url, lines, method, body);
  t->endpoint_keys = true;
  if (!proxied) {
    t->proxy = -1;
    curl_easy_setopt(t->easy, CURLOPT_PROXY, "");
  }
  curl_easy_setopt(t->easy, CURLOPT_PREREQFUNCTION, nullptr);
  CURL* e = t->easy;
  curl_multi_add_handle(multi_, e);
  active_.emplace(e, std::move(t));
}

std::unique_ptr<HttpLoop::Transfer> HttpLoop::own_request(const std::string& url, const std::vector<std::string>& lines,
                                                          std::string_view method, std::string_view body) {
  auto t = take_transfer(url);
  CURL* e = t->easy;
  for (const auto& line : lines) t->headers = curl_slist_append(t->headers, line.c_str());
  if (!agent_line_.empty()) t->headers = curl_slist_append(t->headers, agent_line_.c_str());
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
  if (method != "GET") {  // (a fresh handle per transfer: the next one is a GET again)
    if (method != "POST") curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, std::string(method).c_str());
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, std::string(body).c_str());
  }
  curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(0));
  t->max_body = kTokenMax;
  return t;
}

std::string HttpLoop::keys_source() const {
  const FetchOptions::Aws& aws = *opt_.aws;
  if (endpoint_keys_.assuming) return fmt::format("STS {} (role {})", aws.sts, aws.roles[endpoint_keys_.link - 1].arn);
  switch (aws.kind) {
    case FetchOptions::Aws::Endpoint::instance:
      return "the instance metadata service " + aws.endpoint;
    case FetchOptions::Aws::Endpoint::sts:
      return fmt::format("STS {} (role {})", aws.endpoint, aws.role_arn);
    case FetchOptions::Aws::Endpoint::assume_role:
      return fmt::format("STS {} (role {})", aws.sts, aws.roles.front().arn);
    case FetchOptions::Aws::Endpoint::sso:
      return "the SSO portal " + aws.endpoint;
    case FetchOptions::Aws::Endpoint::container:
      break;
  }
  return aws.endpoint;
}

// An SSO login's keys: the portal asked with the login's token, read again each time (a new login
// replaces it). A token that expires in less than 15 minutes is renewed first where it can be, as
// the AWS CLI does: at once when it expired, else at most every 30 s.
void HttpLoop::start_sso_keys() {
  const FetchOptions::Aws& aws = *opt_.aws;
  EndpointKeys& k = endpoint_keys_;
  std::string error;
  auto login = read_sso_token(aws.endpoint_token_file, error);
  if (!login) {
    return endpoint_keys_failed(fmt::format("aws_sigv4: no credentials from {}: {}", keys_source(), error), false, {});
  }
  const auto now = std::chrono::system_clock::now();
  if (!aws.sso_renewal.empty() && login->renewable(now) && login->expires - now < kSsoRenewalAhead &&
      (login->expires <= now || Clock::now() >= k.renew_login_after)) {
    k.renewing_login = true;
    k.login = std::move(login);
    return ask_for_keys(aws.sso_renewal, {"Content-Type: application/json", "Accept: application/json"}, "POST",
                        sso_renewal_request(*k.login), true);
  }
  ask_sso_portal(*login);
}

void HttpLoop::ask_sso_portal(const SsoToken& login) {
  const FetchOptions::Aws& aws = *opt_.aws;
  std::string error;
  if (login.expires <= std::chrono::system_clock::now()) {
    error = fmt::format("the SSO login expired at {:%Y-%m-%d %H:%M:%S} UTC: run `aws sso login --profile {}`",
                        std::chrono::floor<std::chrono::seconds>(login.expires), aws.sso_profile);
  } else if (!header_value_ok(login.token)) {
    error = "the SSO login's token holds a line break";
  }
  if (!error.empty()) {
    return endpoint_keys_failed(fmt::format("aws_sigv4: no credentials from {}: {}", keys_source(), error), false, {});
  }
  ask_for_keys(aws.endpoint, {"Accept: application/json", "x-amz-sso_bearer_token: " + login.token}, "GET", {}, true);
}

// SSO OIDC's answer to a renewal. The renewed login is written back to its cache file (for the AWS
// CLI, the SDKs and the next run) and asks the portal; after a failed renewal, a token the cache
// holds by then that is not the one renewed, else the old token while it is valid (a notice); the
// keys' failure when it is not.
void HttpLoop::finish_sso_renewal(Transfer& t, CURLcode code) {
  const FetchOptions::Aws& aws = *opt_.aws;
  EndpointKeys& k = endpoint_keys_;
  k.renewing_login = false;
  const SsoToken login = std::move(*std::exchange(k.login, std::nullopt));
  long status = 0;
  curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &status);
  std::string why;
  bool retryable = false;
  std::optional<nanoseconds> wait;
  if (code != CURLE_OK) {
    why = transfer_failure(t, code, out_of_sockets(t, code), opt_.retry, retryable);
  } else if (status < 200 || status >= 300) {
    const std::string said = token_error(t.body);  // "invalid_grant (Invalid refresh token provided)"
    why = fmt::format("HTTP {}{}", status, said.empty() ? "" : ": " + said);
    // invalid_grant is asked again after the backoff too: the refresh token may have been spent by
    // another fetch node of the run renewing the same login at the same moment, and the next
    // attempt reads the cache file, and its new token, first.
    retryable = opt_.retry.retries_status(status) || said.starts_with("invalid_grant");
    wait = retry_after(t.easy, status);
  } else if (auto renewed = parse_sso_renewal(t.body, login, std::chrono::system_clock::now(), why)) {
    const auto until = std::chrono::floor<std::chrono::seconds>(renewed->expires);
    std::string error;
    if (replace_private_file(aws.endpoint_token_file, sso_cache_json(*renewed, aws.sso_start_url, aws.sso_region),
                             error)) {
      notice(fmt::format(
          "aws_sigv4: the SSO login renewed by SSO OIDC {}: its token serves until {:%Y-%m-%d %H:%M:%S} UTC",
          aws.sso_renewal, until));
    } else {
      notice(
          fmt::format("aws_sigv4: the SSO login renewed by SSO OIDC {} could not be kept: {}; its token serves "
                      "this run until {:%Y-%m-%d %H:%M:%S} UTC",
                      aws.sso_renewal, error, until));
    }
    k.renew_login_after = {};
    return ask_sso_portal(*renewed);
  }
  // Renewed meanwhile by someone else (the AWS CLI, another node of the run: a refresh token serves
  // once), or logged in again: the cache's new token.
  std::string unread;
  if (auto cached = read_sso_token(aws.endpoint_token_file, unread);
      cached && cached->token != login.token && cached->expires > std::chrono::system_clock::now()) {
    return ask_sso_portal(*cached);
  }
  k.renew_login_after = Clock::now() + kSsoRenewalPause;
  const auto expires = std::chrono::floor<std::chrono::seconds>(login.expires);
  if (login.expires > std::chrono::system_clock::now()) {
    notice(
        fmt::format("aws_sigv4: the SSO login could not be renewed by SSO OIDC {}: {}; its token serves until it "
                    "expires at {:%Y-%m-%d %H:%M:%S} UTC",
                    aws.sso_renewal, why, expires));
    return ask_sso_portal(login);
  }
  endpoint_keys_failed(fmt::format("aws_sigv4: no credentials from {}: the SSO login expired at {:%Y-%m-%d %H:%M:%S} "
                                   "UTC and could not be renewed by SSO OIDC {} ({}): run `aws sso login --profile {}`",
                                   keys_source(), expires, aws.sso_renewal, why, aws.sso_profile),
                       retryable, wait);
}

void HttpLoop::finish_endpoint_keys(Transfer& t, CURLcode code) {
  if (endpoint_keys_.renewing_login) return finish_sso_renewal(t, code);
  const std::string from = "aws_sigv4: no credentials from " + keys_source();
  long status = 0;
  curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &status);
  const bool no_socket = out_of_sockets(t, code);
  if (code != CURLE_OK) {
    bool retryable = false;
    const std::string why = transfer_failure(t, code, no_socket, opt_.retry, retryable);
    return endpoint_keys_failed(fmt::format("{}: {}", from, why), retryable, {});
  }
  const bool assuming = endpoint_keys_.assuming;
  if (opt_.aws->kind == FetchOptions::Aws::Endpoint::instance && !assuming) return finish_instance_keys(t);
  const bool sts = opt_.aws->kind == FetchOptions::Aws::Endpoint::sts || assuming;
  const bool sso = opt_.aws->kind == FetchOptions::Aws::Endpoint::sso && !assuming;
  if (status < 200 || status >= 300) {
    // "InvalidIdentityToken: Token expired"; "Session token not found or invalid"
    const std::string said = sts ? sts_error(t.body) : sso ? sso_error(t.body) : "";
    return endpoint_keys_failed(fmt::format("{}: HTTP {}{}", from, status, said.empty() ? "" : ": " + said),
                                opt_.retry.retries_status(status) || said.starts_with("IDPCommunicationError"),
                                retry_after(t.easy, status));
  }
  std::string error;
  auto keys = sts   ? parse_sts_credentials(t.body, error)
              : sso ? parse_sso_credentials(t.body, error)
                    : parse_container_credentials(t.body, error);
  if (!keys) return endpoint_keys_failed(fmt::format("{}: {}", from, error), false, {});
  keys_received(std::move(*keys));
}

// One step of an instance's answer (the transfer ended with a response). A 401 to the token held
// from before: it expired, a new one is asked for at once (to a new one: a failure, retried after
// the backoff). A 404 for the role's keys: the role changed since its name was read; asked for again
// after the backoff.
void HttpLoop::finish_instance_keys(Transfer& t) {
  EndpointKeys& k = endpoint_keys_;
  const std::string from = "aws_sigv4: no credentials from " + keys_source();
  long status = 0;
  curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &status);
  std::string body = t.body;
  while (!body.empty() && std::isspace(static_cast<unsigned char>(body.back()))) body.pop_back();
  if (k.step == EndpointKeys::Step::token) {
    if (status == 403 || status == 404 || status == 405) {  // no IMDSv2 here (as the SDKs read it): IMDSv1
      k.v1 = true;
      return start_instance_keys();
    }
    if (status < 200 || status >= 300) {
      return endpoint_keys_failed(fmt::format("{}: HTTP {} for a session token", from, status),
                                  opt_.retry.retries_status(status), retry_after(t.easy, status));
    }
    if (body.empty() || !header_value_ok(body)) {
      return endpoint_keys_failed(from + ": its session token is empty or holds a line break", false, {});
    }
    k.token = std::move(body);
    k.token_new = true;
    k.token_until = Clock::now() + kInstanceTokenLife - std::chrono::minutes(1);
    return start_instance_keys();
  }
  const bool role = k.step == EndpointKeys::Step::role;
  if (status == 401 && !k.v1) {  // the token held from before expired (the service restarted): a new one
    k.token.clear();
    if (!k.token_new) return start_instance_keys();
    return endpoint_keys_failed(fmt::format("{}: HTTP 401 (its new session token was refused)", from), true, {});
  }
  if (status == 404) {
    if (role)
      return endpoint_keys_failed(from + ": HTTP 404: the instance has no IAM role (instance profile)", false, {});
    const std::string gone = std::exchange(k.role, std::string());
    return endpoint_keys_failed(fmt::format("{}: HTTP 404 for the keys of role '{}'", from, gone), true, {});
  }
  if (status < 200 || status >= 300) {
    return endpoint_keys_failed(fmt::format("{}: HTTP {} for the {}", from, status, role ? "role" : "role's keys"),
                                opt_.retry.retries_status(status), retry_after(t.easy, status));
  }
  if (role) {  // one role per instance profile: the first line
    if (const auto nl = body.find('\n'); nl != std::string::npos) body.erase(nl);
    if (!iam_name(body)) return endpoint_keys_failed(from + ": its answer names no IAM role", false, {});
    k.role = std::move(body);
    return start_instance_keys();
  }
  std::string error;
  auto keys = parse_instance_credentials(t.body, error);
  if (!keys) return endpoint_keys_failed(fmt::format("{}: role '{}': {}", from, k.role, error), false, {});
  k.role.clear();  // asked for again with the next keys, as the SDKs do: the instance's role may change
  keys_received(std::move(*keys));
}

// Keys from an endpoint: they sign from now on, and are asked for again before they expire.
void HttpLoop::keys_received(ProcessCredentials keys) {
  FetchOptions::Aws& aws = *opt_.aws;
  const std::string from = "aws_sigv4: no credentials from " + keys_source();
  const auto system_now = std::chrono::system_clock::now();
  if (keys.expires && *keys.expires <= system_now) {
    return endpoint_keys_failed(from + ": the credentials it gave have expired already", false, {});
  }
  if (!header_value_ok(keys.key_id) || !header_value_ok(keys.session_token)) {
    return endpoint_keys_failed(from + ": a key holds a line break", false, {});
  }
  if (endpoint_keys_.link < aws.roles.size()) {  // the keys the next role is assumed with
    endpoint_keys_.source = {std::move(keys.key_id), std::move(keys.secret), std::move(keys.session_token)};
    return start_assume_role();
  }
  const bool renewed = endpoint_keys_.expires_at != Clock::time_point::min();
  const auto now = Clock::now();
  EndpointKeys& k = endpoint_keys_;
  k.asking = false;
  k.attempts = 0;
  k.failure.reset();
  if (keys.expires) {
    k.expires_at = now + std::chrono::duration_cast<nanoseconds>(*keys.expires - system_now);
    k.renew_at = now + std::chrono::duration_cast<nanoseconds>(refresh_time(*keys.expires, system_now) - system_now);
  } else {
    k.expires_at = k.renew_at = Clock::time_point::max();
  }
  const bool changed = keys.key_id != aws.key_id || keys.secret != aws.secret;
  aws.key_id = std::move(keys.key_id);
  aws.secret = std::move(keys.secret);
  aws.session_token = std::move(keys.session_token);
  if (renewed && changed) notice(fmt::format("aws_sigv4: new credentials from {} sign from now on", keys_source()));
}

// A failed request for keys: made again after the node's backoff (or Retry-After) while `retryable`
// and attempts are left; else the jobs waiting for keys fail with `message`, and so do those that
// come until recovery_timeout has passed, unless the keys from before still serve.
void HttpLoop::endpoint_keys_failed(std::string message, bool retryable, std::optional<nanoseconds> wait) {
  const auto now = Clock::now();
  EndpointKeys& k = endpoint_keys_;
  if (retryable && ++k.attempts < opt_.retry.attempts && !cancel_.load() && !winding_down_.load()) {
    Timer timer;
    timer.endpoint_keys = true;
    timers_.emplace(now + wait.value_or(opt_.retry.backoff(k.attempts + 1, rng_)), std::move(timer));
    return;
  }
  if (k.attempts > 1) message += fmt::format(" ({})", attempts_text(k.attempts));
  k.asking = false;
  k.attempts = 0;
  k.failed_until = now + opt_.breaker_recovery;
  if (now < k.expires_at) notice(fmt::format("{}; the credentials in use sign until they expire", message));
  k.failure = std::move(message);
}

}  // namespace sluice::fetch
