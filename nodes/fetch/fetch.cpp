// fetch: HTTP requests on libcurl's multi interface, on the node's own I/O thread.
#include <arpa/inet.h>
#include <fmt/chrono.h>
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <set>

#include <sluice/json.hpp>
#include <sluice/pipeline.hpp>
#include <sluice/template.hpp>

#include "../builtin.hpp"
#include "../core/file_names.hpp"
#include "../text.hpp"
#include "aws_process.hpp"
#include "credentials.hpp"
#include "http_loop.hpp"

namespace sluice::nodes {
namespace {

class Fetch final : public AsyncNode {
 public:
  Fetch(fetch::FetchOptions options, std::string id) : loop_(std::move(options), std::move(id)) {}
  void start(AsyncOutput& out) override { loop_.start(out); }
  void submit(Record&& record) override { loop_.submit(std::move(record)); }
  void submitted() override { loop_.wake(); }
  void cancel() override { loop_.cancel(); }
  void wind_down() override { loop_.wind_down(); }
  void stop() override { loop_.stop(); }

 private:
  fetch::HttpLoop loop_;
};

Schema retries_schema() {
  return Schema({
      FieldSpec::integer("attempts", "attempts in total, the first one included (1: no retries)")
          .with_default("3")
          .at_least(1),
      FieldSpec::list("on_status", FieldSpec::integer("status", "an HTTP status"), "statuses that are retried")
          .with_default("[429, 500, 502, 503, 504]"),
      FieldSpec::list("on", FieldSpec::enumeration("failure", {"timeout", "connect", "reset"}, "a transport failure"),
                      "transport failures that are retried (connect includes DNS)")
          .with_default("[timeout, connect, reset]"),
      FieldSpec::boolean("non_idempotent",
                         "retry a POST or PATCH like any request; off: only when the server cannot have acted on it "
                         "(a connect failure, a timeout or reset before any of it was sent, a 4xx, a 503)")
          .with_default("false"),
      FieldSpec::string("idempotency_key",
                        "a header (Idempotency-Key, as Stripe and the IETF draft name it) that carries a key of each "
                        "POST or PATCH's own, the same on all its attempts, which are then retried like any request "
                        "(a server that honours it acts once); the key: the value headers give it, else the "
                        "record's idempotency_key field (a failure of an earlier run sent again), else a UUID of its "
                        "own: with settings.state one that --resume sends again for the same request, else a random "
                        "one; the record gets it as idempotency_key"),
      FieldSpec::enumeration("backoff", {"exponential"}, "exponential with full jitter").with_default("exponential"),
      FieldSpec::duration("base", "cap of the first wait; doubles with each retry").with_default("200ms"),
      FieldSpec::duration("max",
                          "cap of every wait, Retry-After included (a 429 or 503's Retry-After pauses its whole host)")
          .with_default("30s"),
  });
}

Schema breaker_schema() {
  return Schema({
      FieldSpec::integer("failure_threshold", "consecutive failures of a host that open its breaker (0: never)")
          .with_default("5")
          .at_least(0),
      FieldSpec::duration("recovery_timeout",
                          "how long an open breaker fails fast before one probe goes through; also when a host's "
                          "unreachable robots.txt is fetched again")
          .with_default("30s"),
  });
}

Schema download_schema() {
  return Schema({
      FieldSpec::string("dir",
                        "the folder the files go to (created when missing); a download cut off mid-way is "
                        "resumed by its retry when the server named its version (ETag, Last-Modified), and one a "
                        "run left unfinished (killed, cancelled) by the next run that downloads its URL there")
          .make_required(),
      FieldSpec::string("path",
                        "the file's path under dir, a template: \"{sku:file}.pdf\", \"{category:file}/{url:hash}.zip\" "
                        "({field:file} makes scraped text safe as a name; '..' and absolute paths fail the record; "
                        "{server_filename}: the server's name for it, from Content-Disposition or the URL); "
                        "default: the URL's hash and an extension from the URL or the Content-Type")
          .validated_by(nodes::check_path_template),
      FieldSpec::boolean("sha256",
                         "the record gets sha256: the hex SHA-256 of the file's bytes, hashed as they are written "
                         "(null for a file kept with exists: keep)")
          .with_default("false"),
      FieldSpec::enumeration("exists", {"replace", "keep"},
                             "when the file is there already: replace it, or keep it (the record goes on with it, "
                             "unfetched unless the file's name comes from the Content-Type or {server_filename}); one "
                             "this run downloaded for another URL fails the record (reason invalid)")
          .with_default("replace"),
  });
}

std::string check_rate(const Value& v) {
  if (fetch::parse_rate(v.to_text())) return "";
  return fmt::format("invalid rate '{}' (write requests per unit: 10/s, 600/m, 1/h)", v.to_text());
}

// A rate in `hosts`, where none lifts the node's rate for those hosts.
std::string check_host_rate(const Value& v) {
  if (v.to_text() == "none") return "";
  const std::string error = check_rate(v);
  return error.empty() ? "" : error.substr(0, error.size() - 1) + ", or none)";
}

std::string check_host_pattern(const Value& v) {
  const std::string error = fetch::host_pattern_error(v.to_text());
  return error.empty() ? "" : fmt::format("'{}' is not a host pattern: {}", v.to_text(), error);
}

// auth's fields: the node's, and a `hosts` entry's.
Schema auth_schema() {
  return Schema({
      FieldSpec::string("user", "the user name; ${API_USER} keeps it in the environment").make_required(),
      FieldSpec::string("password", "the password or API token; ${API_PASSWORD} keeps it out of the file")
          .make_required(),
      FieldSpec::enumeration("scheme", {"basic", "digest", "ntlm"},
                             "basic (RFC 7617: sent with each request), digest (RFC 7616: the password never sent, "
                             "each request asked for it first by a 401) or ntlm (Windows servers, IIS and "
                             "SharePoint: NTLMv2, user as DOMAIN\\user, ASCII; it authenticates a connection, which "
                             "later requests reuse)")
          .with_default("basic"),
  });
}

Schema host_limits_schema() {
  return Schema({
      FieldSpec::integer("per_host", "requests in flight to each matching host (default: the node's)").at_least(1),
      FieldSpec::string("rate", "requests per matching host per unit: 10/s, 600/m; none: no rate (default: the node's)")
          .validated_by(check_host_rate),
      FieldSpec::integer("burst", "requests a matching host may receive at once under rate (default: the node's)")
          .at_least(1),
      FieldSpec::map("headers", FieldSpec::string("value", "a header value; may use {field} templates"),
                     "request headers sent to matching hosts only (an API token for its API): added to the "
                     "node's, replacing those of the same name")
          .with_default(""),
      FieldSpec::object_of("auth", auth_schema(),
                           "a user and password for matching hosts only (as the node's auth, which it replaces "
                           "there): one node crawls services with credentials of their own"),
  });
}

std::string check_proxy(const Value& v) {
  const std::string text = v.to_text();
  if (text == "none") return "";
  const auto scheme_end = text.find("://");
  const std::string scheme = scheme_end == std::string::npos ? "" : text.substr(0, scheme_end);
  static const std::set<std::string> kSchemes = {"http", "https", "socks4", "socks4a", "socks5", "socks5h"};
  if (!kSchemes.count(scheme) || text.size() == scheme_end + 3) {
    return "expected a proxy URL (http://host:port, https://, socks5://, socks5h://) or none";
  }
  return "";
}

// An element of `proxies`: a proxy URL ('none' is proxy's, not a proxy).
std::string check_proxy_entry(const Value& v) {
  if (v.to_text() == "none") return "'none' is not a proxy (proxy: none goes direct)";
  const std::string error = check_proxy(v);
  return error.empty() ? "" : "expected a proxy URL (http://host:port, https://, socks5://, socks5h://)";
}

std::string check_media_type(const Value& v) {
  fetch::MediaTypes probe;
  if (probe.add(v.to_text())) return "";
  return fmt::format("invalid media type '{}' (write text/html, or image/* for every image)", v.to_text());
}

std::string check_status(const Value& v) {
  fetch::StatusSet probe;
  if (probe.add(v.to_text())) return "";
  return fmt::format("invalid status '{}' (write 200, 2xx or 200-299)", v.to_text());
}

Schema cache_schema() {
  return Schema({
      FieldSpec::string("path", "the SQLite file the responses are kept in (created when missing)").make_required(),
      FieldSpec::boolean("offline",
                         "answer only from the cache, never from the network: a request it does not hold fails "
                         "with reason not_cached (a test in CI replays what a run recorded); kept responses are "
                         "used however old they are")
          .with_default("false"),
      FieldSpec::list("keep_status", FieldSpec::scalar("status", "404, 4xx or 400-499").validated_by(check_status),
                      "statuses outside ok_status kept too (a dead link's 404, a 410), and answered from the cache "
                      "as the same failure; a status that is retried (retries.on_status) is never kept")
          .with_default(""),
      FieldSpec::boolean("stale_if_error",
                         "a response older than max_age answers its request when the host fails (no answer, a "
                         "5xx or 429, an open breaker) instead of the failure, as HTTP's stale-if-error; its "
                         "fetched_at tells its age")
          .with_default("false"),
      FieldSpec::duration("max_age",
                          "a response older than this is asked for again, with its ETag and Last-Modified: a 304 "
                          "keeps it fresh, another answer replaces it; 0s asks for every one again; default: a "
                          "response is used however old it is"),
  });
}

// oauth2's token_url: a URL fetch could request (parse_host_key()), and http only to this machine
// (localhost or a loopback address, not a name that begins with 127.), since the request carries
// the client's secret.
std::string check_token_url(const Value& v) {
  std::string error;
  const auto key = fetch::parse_host_key(v.to_text(), error);
  if (!key) return hide_credentials(error);
  if (!key->starts_with("http://")) return "";
  const std::string host(fetch::host_of_key(*key));
  in_addr v4{};
  if (host == "localhost" || host == "[::1]" ||
      (inet_pton(AF_INET, host.c_str(), &v4) == 1 && (ntohl(v4.s_addr) >> 24) == 127))
    return "";
  return fmt::format(
      "'{}': the request carries the client secret, so it goes over https (http only to a loopback host)",
      hide_credentials(v.to_text()));
}

// oauth2's service_account_impersonation_url: likewise, as the request carries the access token.
std::string check_impersonation_url(const Value& v) {
  std::string error = check_token_url(v);
  if (const auto at = error.find("the client secret"); at != std::string::npos) {
    error.replace(at, std::string_view("the client secret").size(), "the access token");
  }
  return error;
}

Schema jwt_schema() {
  return Schema({
      FieldSpec::string("key_file",
                        "a Google service account's JSON key, or a PEM file with an RSA private key: the "
                        "assertion is signed with it (RS256)")
          .make_required(),
      FieldSpec::string("issuer", "the assertion's iss: who the client is; default: the JSON key's client_email"),
      FieldSpec::string("subject",
                        "the assertion's sub: the user the client acts for (Google's domain-wide "
                        "delegation, Salesforce's user); default: none"),
      FieldSpec::string("audience", "the assertion's aud; default: token_url"),
      FieldSpec::string("key_id", "the assertion's kid; default: the JSON key's private_key_id"),
      FieldSpec::string("certificate",
                        "a PEM file with key_file's X.509 certificate (may be key_file itself): the assertion's "
                        "header names it by its thumbprints, x5t and x5t#S256, as Microsoft Entra ID's "
                        "certificate credentials ask"),
  });
}

Schema oauth2_schema() {
  return Schema({
      FieldSpec::string("token_url",
                        "the authorization server's token endpoint (https); required unless a jwt key_file "
                        "gives one (a Google key's token_uri)")
          .validated_by(check_token_url),
      FieldSpec::string("client_id",
                        "the client's id; ${CLIENT_ID} keeps it in the environment; required except with jwt"),
      FieldSpec::string("client_secret",
                        "the client's secret; ${CLIENT_SECRET} keeps it out of the file; required except with a "
                        "refresh token (none: a public client, whose id goes in the request's form), with jwt or "
                        "client_assertion_file, and with client_auth private_key_jwt or tls_client_auth"),
      FieldSpec::string("refresh_token",
                        "the refresh token grant (RFC 6749 6) instead of client credentials: a refresh token "
                        "the user's authorization gave (${REFRESH_TOKEN}); a new one the server issues is used "
                        "for the rest of the run"),
      FieldSpec::string("refresh_token_file",
                        "the refresh token grant with the refresh token in this file (one line); a new one "
                        "the server issues replaces it there, so that the next run has it"),
      FieldSpec::string("scope", "the scope asked for (space-separated); default: none, the server's"),
      FieldSpec::map("params", FieldSpec::string("value", "a value"),
                     "more fields of the token request: audience, resource (name -> value)")
          .with_default(""),
      FieldSpec::object_of("jwt", jwt_schema(),
                           "the JWT bearer grant (RFC 7523) instead of client credentials: each token request "
                           "carries an assertion signed with key_file (Google service accounts, Salesforce's JWT "
                           "flow); scope goes in the assertion"),
      FieldSpec::string("client_assertion_file",
                        "the client proves itself with the token in this file instead of a secret (a federated "
                        "credential: a Kubernetes service account's token, AZURE_FEDERATED_TOKEN_FILE, a CI "
                        "job's OIDC token), sent as its client_assertion with the client_id; read again for each "
                        "token request, as its issuer replaces it"),
      FieldSpec::string("subject_token_file",
                        "the token exchange grant (RFC 8693) instead of client credentials: the token in this file "
                        "(a CI job's OIDC token, a Kubernetes service account's) is exchanged for an access token, "
                        "as Google's workload identity federation and other security token services take it (the "
                        "audience in params); read again for each token request; client_id and client_secret are "
                        "optional with it"),
      FieldSpec::string("subject_token_type",
                        "what subject_token_file holds (RFC 8693 3); default: urn:ietf:params:oauth:token-type:jwt"),
      FieldSpec::string("service_account_impersonation_url",
                        "Google's service account impersonation: the token the grant gives is exchanged at this URL "
                        "(https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/EMAIL:"
                        "generateAccessToken, as gcloud's credential configuration names it) for an access token of "
                        "that service account, for scope (required with it); each time a token is asked for")
          .validated_by(check_impersonation_url),
      FieldSpec::enumeration("client_auth", {"basic", "post", "private_key_jwt", "tls_client_auth"},
                             "how the client proves itself: basic (HTTP Basic authentication, RFC 6749's "
                             "default), post (client_id and client_secret in the request's form), "
                             "private_key_jwt (a JWT signed with jwt.key_file, its iss and sub the client_id, "
                             "instead of a secret: jwt is then no grant of its own), tls_client_auth (the "
                             "node's client_cert in the TLS handshake and the client_id in the form, no secret: "
                             "RFC 8705, open banking's mutual TLS; the server may bind its tokens to the "
                             "certificate, which the node presents to every server that asks)")
          .with_default("basic"),
  });
}

// Request headers (`headers`, and a `hosts` entry's): names, no line breaks, templates that compile.
void check_headers(const ConfigValue::Map& headers, const std::string& where, Diagnostics& diags) {
  for (const auto& [name, value] : headers) {
    const std::string text = std::get<Value>(value.v).to_text();
    std::string error;
    if (!fetch::is_header_name(name)) {
      diags.error(value.where, fmt::format("{}: '{}' is not a header name (letters, digits and "
                                           "!#$%&'*+-.^_`|~, no spaces or colons)",
                                           where, name));
    } else if (!fetch::header_value_ok(text)) {
      diags.error(value.where, fmt::format("{}.{}: a header value cannot hold a line break", where, name));
    } else if (!FieldTemplate::compile(text, &error)) {
      diags.error(value.where, fmt::format("{}.{}: {}", where, name, error));
    }
  }
}

// A string of fetch's `json` that is one {field} and nothing else: the field's name and format.
std::optional<std::pair<std::string, std::string>> sole_reference(std::string_view s) {
  const auto t = FieldTemplate::compile(s);  // '{ x }', '{}': not a field's
  if (!t) return std::nullopt;
  std::optional<std::pair<std::string, std::string>> field;
  int fields = 0;
  bool text = false;
  t->visit([&](std::string_view literal) { text = text || !literal.empty(); },
           [&](std::string_view name, std::string_view format) {
             ++fields;
             field.emplace(name, format);
           });
  return fields == 1 && !text ? field : std::nullopt;
}

// JSON text as a template's literal text: its braces doubled.
void append_literal(std::string& out, std::string_view json) {
  for (char c : json) {
    out += c;
    if (c == '{' || c == '}') out += c;
  }
}

// fetch's `json`: the value written in YAML as the text of a body template, JSON with its braces
// doubled, in which a string that is one {field} alone stands for the field's value as JSON
// ({field:json}: a number stays one, a missing field is null). Every other string, and every key,
// goes as it is written (a GraphQL query's braces need no doubling); a string that mixes text with a
// {field}, a {field} with another format and a number JSON cannot write are errors.
void json_body_template(const ConfigValue& value, const std::string& label, std::string& out, Diagnostics& diags) {
  if (const auto* list = std::get_if<ConfigValue::List>(&value.v)) {
    out += '[';
    for (std::size_t i = 0; i < list->size(); ++i) {
      if (i) out += ',';
      json_body_template((*list)[i], fmt::format("{}[{}]", label, i), out, diags);
    }
    out += ']';
    return;
  }
  if (const auto* map = std::get_if<ConfigValue::Map>(&value.v)) {
    out += "{{";
    for (std::size_t i = 0; i < map->size(); ++i) {
      std::string key;
      append_json_string(key, (*map)[i].first);
      append_literal(out, (i ? "," : "") + key + ":");
      json_body_template((*map)[i].second, label + "." + (*map)[i].first, out, diags);
    }
    out += "}}";
    return;
  }
  const Value& scalar = std::get<Value>(value.v);
  const std::string* text = scalar.as_string();
  if (text) {
    if (auto field = sole_reference(*text)) {
      if (!field->second.empty() && field->second != "json") {
        diags.error(value.where, fmt::format("{}: '{}': a {{field}} alone in json is sent as the field's value in "
                                             "JSON, with no other format; for its text with :{}, make that a field "
                                             "with a set node first",
                                             label, *text, field->second));
      }
      out += fmt::format("{{{}:json}}", field->first);
      return;
    }
    if (auto t = FieldTemplate::compile(*text); t && !t->is_constant()) {
      diags.error(value.where,
                  fmt::format("{}: '{}' mixes text with a {{field}}: in json a string is sent as it is written "
                              "unless it is one {{field}} alone; make the text a field with a set node first "
                              "(or write a GraphQL query's braces with spaces inside: '{{ name }}')",
                              label, *text));
    }
  } else if (const double* d = scalar.as_double(); d && !std::isfinite(*d)) {
    diags.error(value.where, fmt::format("{}: {} is no number JSON can write", label, scalar.to_text()));
  }
  std::string json;
  append_json(json, scalar);
  append_literal(out, json);
}

// fetch's `form`: the fields as the text of a body template, application/x-www-form-urlencoded:
// name=value pairs joined by '&', the names and the values' literal text percent-encoded as
// `{field:url}` encodes a field's text (all but A-Z a-z 0-9 - . _ ~), and each {field} a value
// holds written as {field:url}. A {field} with another format is an error (its text could not be
// encoded after it).
std::string form_body_template(const ConfigValue::Map& form, Diagnostics& diags) {
  std::string out;
  for (const auto& entry : form) {
    // Named references, not a structured binding: clang before 16 (the fuzz build's) cannot
    // capture a binding in a lambda.
    const std::string& name = entry.first;
    const ConfigValue& value = entry.second;
    if (!out.empty()) out += '&';
    append_url_encoded(out, name);
    out += '=';
    const auto t = FieldTemplate::compile(std::get<Value>(value.v).to_text());  // valid: the schema checked it
    t->visit([&](std::string_view literal) { append_url_encoded(out, literal); },
             [&](std::string_view field, std::string_view format) {
               if (!format.empty() && format != "url") {
                 diags.error(value.where, fmt::format("form.{}: '{{{}:{}}}': a form's values are percent-encoded, so "
                                                      "a {{field}} in one takes no other format (make the text a "
                                                      "field with a set node first)",
                                                      name, field, format));
               }
               out += fmt::format("{{{}:url}}", field);
             });
  }
  return out;
}

// An Authorization header among `headers` (the field `where`) beside `sender`, which sends one itself
// ("auth sends the Authorization header"): an error.
void no_authorization(const ConfigValue::Map& headers, const std::string& where, const std::string& sender,
                      Diagnostics& diags) {
  for (const auto& [name, value] : headers) {
    if (iequals(name, "authorization")) {
      diags.error(value.where, fmt::format("{}.{}: {}: give one or the other", where, name, sender));
    }
  }
}

// auth's fields (the node's `auth`, or a `hosts` entry's, `name`) checked.
void check_auth(const Config& auth, const std::string& name, Diagnostics& diags) {
  for (const char* field : {"user", "password"}) {
    if (auth.string(field).empty()) {
      diags.error(auth.where(field),
                  fmt::format("{}.{}: empty (is the environment variable it names set?)", name, field));
    }
  }
  if (auth.string("user").find(':') != std::string::npos && auth.string("scheme") == "basic") {
    diags.error(auth.where("user"),
                fmt::format("{}.user: HTTP Basic cannot send a user name with a colon (RFC 7617)", name));
  }
  if (auth.string("scheme") == "ntlm") {
    // libcurl 7.88 widens each byte of the user and password to UTF-16 (and upper-cases ASCII
    // only), so a name or password beyond ASCII would be sent as other characters: never matched.
    for (const char* field : {"user", "password"}) {
      if (beyond_ascii(auth.string(field))) {
        diags.error(auth.where(field), fmt::format("{}.{}: NTLM takes ASCII only here (libcurl sends each byte "
                                                   "as a character of its own): this one would never match",
                                                   name, field));
      }
    }
    const std::string& user = auth.string("user");
    const std::size_t split = user.find('\\') != std::string::npos ? user.find('\\') : user.find('/');  // as libcurl
    if (split != std::string::npos && (split == 0 || split + 1 == user.size())) {
      diags.error(
          auth.where("user"),
          fmt::format("{}.user: '{}' is not DOMAIN\\user (both parts named) nor a plain user name", name, user));
    }
  }
}

fetch::FetchOptions::Auth::Scheme auth_scheme(const std::string& name) {
  using Scheme = fetch::FetchOptions::Auth::Scheme;
  return name == "digest" ? Scheme::digest : name == "ntlm" ? Scheme::ntlm : Scheme::basic;
}

fetch::FetchOptions::Auth auth_options(const Config& a) {
  return fetch::FetchOptions::Auth{a.string("user"), a.string("password"), auth_scheme(a.string("scheme"))};
}

// Runs aws.process (a credential_process) for its keys, unless `run` is null (the pipeline is only
// checked): then only the command is known. They sign, or, for a role, are its source keys.
bool run_aws_process(fetch::FetchOptions::Aws& aws, const std::stop_token* run, std::string& error) {
  if (!run) return true;
  auto keys = fetch::run_credential_process(aws.process, *run, error);
  if (!keys) {
    error = fmt::format("credential_process '{}': {}", aws.process, error);
    return false;
  }
  if (aws.process_is_source()) {
    aws.source = {std::move(keys->key_id), std::move(keys->secret), std::move(keys->session_token)};
  } else {
    aws.key_id = std::move(keys->key_id);
    aws.secret = std::move(keys->secret);
    aws.session_token = std::move(keys->session_token);
  }
  aws.expires = keys->expires;
  return true;
}

// Whether keys may be asked for at `url`: over https, or over http from a loopback address or one of
// `platform`'s (the link-local addresses of the machine's own credentials service).
bool keys_url_allowed(const std::string& url, std::initializer_list<std::string_view> platform) {
  std::string not_http;
  const auto key = fetch::parse_host_key(url, not_http);  // scheme://host:port, in lower case; http(s) only
  if (!key) return false;
  const std::size_t at = key->find("://") + 3;
  const std::string host = key->substr(at, key->rfind(':') - at);
  return key->starts_with("https://") || host == "localhost" || host.starts_with("127.") || host == "[::1]" ||
         std::find(platform.begin(), platform.end(), host) != platform.end();
}

// aws_sigv4's keys from a container's credentials endpoint, found as the AWS SDKs find it:
// AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (a path on http://169.254.170.2: ECS's agent), else
// AWS_CONTAINER_CREDENTIALS_FULL_URI (https, or http to a loopback address or to the endpoints of
// ECS and EKS Pod Identity: 169.254.170.2, 169.254.170.23, [fd00:ec2::23]), with the Authorization
// header of AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE or AWS_CONTAINER_AUTHORIZATION_TOKEN. Sets
// aws.endpoint ("" when neither variable is set); false and `error` for a full URI not allowed.
bool container_endpoint(fetch::FetchOptions::Aws& aws, const std::function<std::string(const char*)>& env,
                        std::string& error) {
  const std::string relative = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
  const std::string full = env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
  if (relative.empty() && full.empty()) return true;
  aws.endpoint_token = env("AWS_CONTAINER_AUTHORIZATION_TOKEN");
  aws.endpoint_token_file = env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
  if (!fetch::header_value_ok(aws.endpoint_token)) {
    error = "AWS_CONTAINER_AUTHORIZATION_TOKEN holds a line break";
    return false;
  }
  if (!relative.empty()) {
    aws.endpoint = "http://169.254.170.2" + (relative.starts_with('/') ? relative : "/" + relative);
    return true;
  }
  if (!keys_url_allowed(full, {"169.254.170.2", "169.254.170.23", "[fd00:ec2::23]"})) {
    error = fmt::format(
        "AWS_CONTAINER_CREDENTIALS_FULL_URI '{}' is not allowed: the keys are asked for over https, or over http "
        "from a loopback address or the container endpoints of ECS and EKS (169.254.170.2, 169.254.170.23, "
        "fd00:ec2::23)",
        full);
    return false;
  }
  aws.endpoint = full;
  return true;
}

// An EC2 instance's metadata service, as the AWS SDKs find it: $AWS_EC2_METADATA_SERVICE_ENDPOINT,
// else on an EC2 instance http://169.254.169.254 (http://[fd00:ec2::254] when
// $AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE is IPv6); none when $AWS_EC2_METADATA_DISABLED is true.
// Not looked for elsewhere: a machine outside EC2 would wait for an address nobody answers. false
// and `error` for an endpoint that is neither https nor http to loopback or the service's address.
bool instance_metadata(fetch::FetchOptions::Aws& aws, const std::function<std::string(const char*)>& env,
                       const std::string& sys, std::string& error) {
  if (nodes::iequals(env("AWS_EC2_METADATA_DISABLED"), "true")) return true;
  std::string url = env("AWS_EC2_METADATA_SERVICE_ENDPOINT");
  if (url.empty()) {
    if (!fetch::on_ec2(sys)) return true;
    const std::string mode = env("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");
    if (!mode.empty() && !nodes::iequals(mode, "ipv4") && !nodes::iequals(mode, "ipv6")) {
      error = fmt::format("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE '{}' is neither IPv4 nor IPv6", mode);
      return false;
    }
    url = nodes::iequals(mode, "ipv6") ? "http://[fd00:ec2::254]" : "http://169.254.169.254";
  }
  while (url.ends_with('/')) url.pop_back();
  if (!keys_url_allowed(url, {"169.254.169.254", "[fd00:ec2::254]"})) {
    error = fmt::format(
        "AWS_EC2_METADATA_SERVICE_ENDPOINT '{}' is not allowed: the keys are asked for over https, or over http "
        "from a loopback address or the instance metadata service (169.254.169.254, fd00:ec2::254)",
        url);
    return false;
  }
  aws.endpoint = std::move(url);
  aws.kind = fetch::FetchOptions::Aws::Endpoint::instance;
  return true;
}

// A role's session name: `given`, else "sluice-<unix time>"; nullopt and `error` (naming it as
// `what`) for one IAM refuses.
std::optional<std::string> role_session(std::string given, std::string_view what, std::string& error) {
  if (given.empty()) {
    given = fmt::format(
        "sluice-{}",
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count());
  }
  if (given.size() < 2 || given.size() > 64 || !fetch::iam_name(given)) {
    error = fmt::format("{} '{}' is not a session name IAM takes (2 to 64 letters, digits and +=,.@_-)", what, given);
    return std::nullopt;
  }
  return given;
}

// STS's endpoint, as the AWS SDKs find it: $AWS_ENDPOINT_URL_STS, else $AWS_ENDPOINT_URL, else STS
// in `region`; nullopt and `error` for one neither https nor loopback.
std::optional<std::string> sts_endpoint(const std::function<std::string(const char*)>& env, const std::string& region,
                                        std::string& error) {
  std::string url = env("AWS_ENDPOINT_URL_STS");
  if (url.empty()) url = env("AWS_ENDPOINT_URL");
  if (url.empty()) url = fmt::format("https://sts.{}.amazonaws.com{}/", region, region.starts_with("cn-") ? ".cn" : "");
  if (!keys_url_allowed(url, {})) {
    error = fmt::format(
        "the STS endpoint '{}' is not allowed: the keys are asked for over https, or over http from "
        "a loopback address",
        url);
    return std::nullopt;
  }
  return url;
}

// STS's AssumeRoleWithWebIdentity of `role` with the token in `file` (read for each request), as
// session `session` (sts_endpoint(), role_session()). `file_name`: what names the file, for its
// errors. false and `error` for an endpoint or session name not allowed, or a file that cannot be read.
bool web_identity_role(fetch::FetchOptions::Aws& aws, const std::function<std::string(const char*)>& env,
                       const std::string& region, const std::string& role, const std::string& file, std::string session,
                       std::string_view session_name, std::string_view file_name, std::string& error) {
  auto name = role_session(std::move(session), session_name, error);
  if (!name) return false;
  auto url = sts_endpoint(env, region, error);
  if (!url) return false;
  std::string unread;
  if (!fetch::read_token_file(file, file_name, "the web identity token", unread)) {
    error = std::move(unread);
    return false;
  }
  aws.endpoint = std::move(*url);
  aws.kind = fetch::FetchOptions::Aws::Endpoint::sts;
  aws.role_arn = role;
  aws.role_session = std::move(*name);
  aws.endpoint_token_file = file;
  return true;
}

// STS's AssumeRoleWithWebIdentity, where the environment names a role and a token file for it, as
// the AWS SDKs read it (EKS's IAM roles for service accounts, GitHub Actions and other OIDC
// providers): AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_SESSION_NAME
// (web_identity_role()). false and `error` for half of it, or as web_identity_role().
bool web_identity(fetch::FetchOptions::Aws& aws, const std::function<std::string(const char*)>& env,
                  const std::string& region, std::string& error) {
  const std::string role = env("AWS_ROLE_ARN"), file = env("AWS_WEB_IDENTITY_TOKEN_FILE");
  if (role.empty() && file.empty()) return true;
  if (role.empty() || file.empty()) {
    error = fmt::format("AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE go together: {} is not set",
                        role.empty() ? "AWS_ROLE_ARN" : "AWS_WEB_IDENTITY_TOKEN_FILE");
    return false;
  }
  return web_identity_role(aws, env, region, role, file, env("AWS_ROLE_SESSION_NAME"), "AWS_ROLE_SESSION_NAME",
                           "AWS_WEB_IDENTITY_TOKEN_FILE", error);
}

// The keys of an account's role from IAM Identity Center (SSO), for a profile (`sso`, of profile
// `profile`) with sso_account_id and sso_role_name and either sso_session (a section [sso-session
// NAME] of the config file `config` with sso_start_url and sso_region) or, the legacy way,
// sso_start_url and sso_region of its own, as the AWS CLI gets them: the SSO portal
// ($AWS_ENDPOINT_URL_SSO, else $AWS_ENDPOINT_URL, else https://portal.sso.REGION.amazonaws.com)
// asked for them with the token `aws sso login` left in ~/.aws/sso/cache (read again for each
// request: a new login replaces it). false and `error` for a setting missing, no login or an
// expired one, or an endpoint not allowed.
bool profile_sso(fetch::FetchOptions::Aws& aws, const fetch::AwsProfileRole& sso, const std::string& profile,
                 const std::function<std::string(const char*)>& env, const std::string& config, std::string& error) {
  const std::string in = fmt::format("profile [{}]'s SSO login", profile);
  std::string start_url = sso.sso_start_url, region = sso.sso_region, key = sso.sso_start_url;
  if (!sso.sso_session.empty()) {
    fetch::FetchOptions::Aws unused;
    fetch::AwsProfileRole session;
    std::string unread;
    if (config.empty()) {
      error = fmt::format(
          "{}: its sso_session '{}' is a section of the config file, which is not read when "
          "credentials_file is named",
          in, sso.sso_session);
      return false;
    }
    if (!fetch::read_aws_credentials(config, "sso-session " + sso.sso_session, unused, unread, true, &session)) {
      error = fmt::format("{}: its sso_session '{}' has no [sso-session {}] section in the config file ({})", in,
                          sso.sso_session, sso.sso_session, unread);
      return false;
    }
    start_url = session.sso_start_url;
    region = session.sso_region;
    key = sso.sso_session;
  }
  for (const auto& [name, value] : {std::pair<const char*, const std::string&>{"sso_start_url", start_url},
                                    {"sso_region", region},
                                    {"sso_account_id", sso.sso_account_id},
                                    {"sso_role_name", sso.sso_role_name}}) {
    if (value.empty()) {
      error = fmt::format("{}: it has no {}", in, name);
      return false;
    }
  }
  if (!std::all_of(region.begin(), region.end(),
                   [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; })) {
    error = fmt::format("{}: its sso_region '{}' is no AWS region name (eu-west-1)", in, region);
    return false;
  }
  const std::string cache = fetch::sso_cache_file(env("HOME"), key);
  const std::string login = fmt::format("`aws sso login --profile {}`", profile);
  std::string unread;
  const auto token = fetch::read_sso_token(cache, unread);
  if (!token) {
    std::error_code ec;
    error = std::filesystem::exists(cache, ec)
                ? fmt::format("{}: {}", in, unread)
                : fmt::format("{}: there is none ({} is not there): run {}", in, cache, login);
    return false;
  }
  const auto now = std::chrono::system_clock::now();
  const bool renewed = !sso.sso_session.empty();  // (a legacy login is not: it has no refresh token)
  if (token->expires <= now && !(renewed && token->renewable(now))) {
    error = fmt::format("{}: it expired at {:%Y-%m-%d %H:%M:%S} UTC: run {}", in,
                        std::chrono::floor<std::chrono::seconds>(token->expires), login);
    return false;
  }
  // The portal ($AWS_ENDPOINT_URL_SSO), and SSO OIDC for a renewal ($AWS_ENDPOINT_URL_SSO_OIDC).
  const auto endpoint = [&](const char* variable, std::string_view host, std::string_view what) {
    std::string url = env(variable);
    if (url.empty()) url = env("AWS_ENDPOINT_URL");
    if (url.empty()) url = fmt::format("https://{}.{}.amazonaws.com", host, region);
    if (!keys_url_allowed(url, {})) {
      error =
          fmt::format("{}: the {} endpoint '{}' is not allowed: {} over https, or over http from a loopback address",
                      in, what, url, what == "SSO" ? "the keys are asked for" : "the login is renewed");
      return std::string();
    }
    while (url.ends_with('/')) url.pop_back();
    return url;
  };
  std::string url = endpoint("AWS_ENDPOINT_URL_SSO", "portal.sso", "SSO");
  if (url.empty()) return false;
  if (renewed) {
    aws.sso_renewal = endpoint("AWS_ENDPOINT_URL_SSO_OIDC", "oidc", "SSO OIDC");
    if (aws.sso_renewal.empty()) return false;
    aws.sso_renewal += "/token";
  }
  aws.sso_start_url = start_url;
  aws.sso_region = region;
  aws.sso_profile = profile;
  url += "/federation/credentials?account_id=";
  append_url_encoded(url, sso.sso_account_id);
  url += "&role_name=";
  append_url_encoded(url, sso.sso_role_name);
  aws.endpoint = std::move(url);
  aws.kind = fetch::FetchOptions::Aws::Endpoint::sso;
  aws.endpoint_token_file = cache;
  return true;
}

// The role a profile names (`role`, of profile `profile`), as the AWS CLI assumes it: with its
// web_identity_token_file, STS's AssumeRoleWithWebIdentity; else STS's AssumeRole (added to
// aws.roles), signed with the keys of its source_profile (found as the profile's own: in
// `credentials`, else in the config file `config` unless ""; a source profile with a role of its
// own is assumed first, a chain of at most `depth` more) or those its credential_source gives
// (Environment; Ec2InstanceMetadata: the instance metadata service's; EcsContainer: the container's
// credentials endpoint's), with its external_id, role_session_name and duration_seconds. false and
// `error` for what an unattended run cannot do (mfa_serial: a code typed in), what fetch does not (a
// source profile with only a credential_process), a source that gives no keys, a chain too long (or
// a loop), or a setting out of its range.
bool profile_role(fetch::FetchOptions::Aws& aws, const fetch::AwsProfileRole& role, const std::string& profile,
                  const std::function<std::string(const char*)>& env, const std::string& region,
                  const std::string& credentials, const std::string& config, std::string& error, int depth = 4) {
  const std::string in = fmt::format("profile [{}]'s role {}", profile, role.arn);
  const auto fail = [&](const std::string& why) {
    error = fmt::format("{}: {}", in, why);
    return false;
  };
  if (!role.mfa_serial.empty()) {
    error = fmt::format(
        "{} asks for an MFA code (mfa_serial), which a run cannot type in: give the run keys of a session "
        "(`aws configure export-credentials --profile {} --format env`)",
        in, profile);
    return false;
  }
  if (!role.web_identity_token_file.empty()) {
    return web_identity_role(aws, env, region, role.arn, role.web_identity_token_file, role.session_name,
                             "role_session_name", "web_identity_token_file", error) ||
           fail(error);
  }
  fetch::FetchOptions::Aws::Role assumed{role.arn, "", role.external_id, 0};
  auto session = role_session(role.session_name, "role_session_name", error);
  if (!session) return fail(error);
  assumed.session = std::move(*session);
  if (!role.duration.empty()) {
    const char* end = role.duration.data() + role.duration.size();
    if (std::from_chars(role.duration.data(), end, assumed.duration).ptr != end || assumed.duration < 900 ||
        assumed.duration > 43200) {
      return fail(
          fmt::format("duration_seconds '{}' is not a whole number of seconds from 900 to 43200", role.duration));
    }
  }
  if (!role.external_id.empty() &&
      (role.external_id.size() < 2 || role.external_id.size() > 1224 || !fetch::header_value_ok(role.external_id))) {
    return fail("its external_id is not one STS takes (2 to 1224 characters on one line)");
  }
  auto sts = sts_endpoint(env, region, error);
  if (!sts) return fail(error);
  aws.sts = std::move(*sts);
  if (!role.source_profile.empty() && !role.credential_source.empty()) {
    return fail("give source_profile or credential_source, not both");
  }
  if (!role.source_profile.empty()) {
    fetch::FetchOptions::Aws source;
    fetch::AwsProfileRole chained;
    std::string unread;
    std::error_code ec;
    const bool found = fetch::read_aws_credentials(credentials, role.source_profile, source, unread, false, &chained) ||
                       (!config.empty() && std::filesystem::exists(config, ec) &&
                        fetch::read_aws_credentials(config, role.source_profile, source, unread, true, &chained));
    if (!chained.arn.empty() && role.source_profile != profile) {  // its role first, then this one
      if (depth == 0) {
        return fail(fmt::format("its source_profile [{}] is one more role in a chain of more than 5 (or a loop)",
                                role.source_profile));
      }
      if (!profile_role(aws, chained, role.source_profile, env, region, credentials, config, error, depth - 1)) {
        return false;
      }
      aws.roles.push_back(std::move(assumed));
      return true;
    }
    if (!chained.arn.empty()) {  // its own keys, as the AWS CLI takes them for source_profile = itself
      source = {};
      if (!fetch::read_aws_credentials(credentials, profile, source, unread) && !config.empty()) {
        fetch::read_aws_credentials(config, profile, source, unread, true);
      }
    } else if (!found) {
      return fail("its source_profile: " + unread);
    } else if (chained.sso()) {  // its SSO login's keys first, then this role
      if (!profile_sso(aws, chained, role.source_profile, env, config, error)) return fail(error);
      aws.roles.push_back(std::move(assumed));
      return true;
    }
    if (source.process.empty() && source.key_id.empty()) {
      return fail(fmt::format(
          "its source_profile [{}] has no keys (aws_access_key_id and aws_secret_access_key, or a credential_process)",
          role.source_profile));
    }
    aws.kind = fetch::FetchOptions::Aws::Endpoint::assume_role;
    aws.endpoint = aws.sts;
    aws.process = std::move(source.process);  // its keys: run_aws_process()
    aws.source = {std::move(source.key_id), std::move(source.secret), std::move(source.session_token)};
  } else if (role.credential_source == "Environment") {
    aws.source = {env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"), env("AWS_SESSION_TOKEN")};
    if (aws.source.key_id.empty() || aws.source.secret.empty()) {
      return fail("its credential_source is Environment, and AWS_ACCESS_KEY_ID or AWS_SECRET_ACCESS_KEY is not set");
    }
    aws.kind = fetch::FetchOptions::Aws::Endpoint::assume_role;
    aws.endpoint = aws.sts;
  } else if (role.credential_source == "Ec2InstanceMetadata") {
    if (!instance_metadata(aws, env, "/sys", error)) return fail(error);
    if (aws.endpoint.empty()) {
      return fail(
          "its credential_source is Ec2InstanceMetadata, and this machine is not an EC2 instance (nor is "
          "AWS_EC2_METADATA_SERVICE_ENDPOINT set), or AWS_EC2_METADATA_DISABLED is true");
    }
  } else if (role.credential_source == "EcsContainer") {
    if (!container_endpoint(aws, env, error)) return fail(error);
    if (aws.endpoint.empty()) {
      return fail(
          "its credential_source is EcsContainer, and neither AWS_CONTAINER_CREDENTIALS_RELATIVE_URI nor "
          "_FULL_URI is set");
    }
  } else if (!role.credential_source.empty()) {
    return fail(fmt::format("credential_source '{}' is none of Environment, Ec2InstanceMetadata and EcsContainer",
                            role.credential_source));
  } else {
    return fail("it needs a source_profile, a credential_source or a web_identity_token_file");
  }
  aws.roles.push_back(std::move(assumed));
  return true;
}

// aws_sigv4's credentials, where the AWS SDKs look for them: access_key_id and secret_access_key
// (with session_token) as given; else the keys `credential_process` prints; else, unless a profile
// or file is named, the AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN environment
// variables, else a role the environment names for its web identity token (web_identity(), asked
// of STS by the I/O thread); else the profile (`profile`, $AWS_PROFILE, or "default") of the shared credentials
// file (`credentials_file`, $AWS_SHARED_CREDENTIALS_FILE, or ~/.aws/credentials), or of the config
// file ($AWS_CONFIG_FILE, or ~/.aws/config): its keys, or those its credential_process prints;
// else, unless a profile or file is named, a container's credentials endpoint (container_endpoint(),
// asked by the I/O thread); else an EC2 instance's metadata service (instance_metadata(), likewise). A
// credential_process runs only when `run` is given (the node is made; it gives up when the stop is requested). false
// and `error` when there are none.
bool aws_credentials(const Config& a, fetch::FetchOptions::Aws& aws, std::string& error,
                     const std::stop_token* run = nullptr) {
  if (a.has("access_key_id") || a.has("secret_access_key")) {
    aws.key_id = a.has("access_key_id") ? a.string("access_key_id") : "";
    aws.secret = a.has("secret_access_key") ? a.string("secret_access_key") : "";
    aws.session_token = a.has("session_token") ? a.string("session_token") : "";
    return true;
  }
  if (a.has("credential_process")) {
    aws.process = a.string("credential_process");
    return run_aws_process(aws, run, error);
  }
  const auto env = [](const char* name) {
    const char* value = std::getenv(name);
    return std::string(value ? value : "");
  };
  const bool named = a.has("profile") || a.has("credentials_file");
  if (!named && !env("AWS_ACCESS_KEY_ID").empty() && !env("AWS_SECRET_ACCESS_KEY").empty()) {
    aws.key_id = env("AWS_ACCESS_KEY_ID");
    aws.secret = env("AWS_SECRET_ACCESS_KEY");
    aws.session_token = env("AWS_SESSION_TOKEN");
    return true;
  }
  if (!named) {
    if (!web_identity(aws, env, a.string("region"), error)) return false;
    if (!aws.endpoint.empty()) return true;
  }
  std::string profile = a.has("profile") ? a.string("profile") : env("AWS_PROFILE");
  if (profile.empty()) profile = "default";
  std::string path = a.has("credentials_file") ? a.string("credentials_file") : env("AWS_SHARED_CREDENTIALS_FILE");
  if (path.empty()) path = env("HOME") + "/.aws/credentials";
  // The AWS CLI's config file, unless a credentials file is named: a profile there that names a
  // role or a credential_process (or, rarely, holds keys).
  std::string config;
  if (!a.has("credentials_file")) {
    config = env("AWS_CONFIG_FILE");
    if (config.empty()) config = env("HOME") + "/.aws/config";
  }
  // A role comes first, named in either file: the AWS CLI reads a profile as the two files' settings
  // together.
  fetch::AwsProfileRole role;
  fetch::FetchOptions::Aws from_config = aws;
  std::string config_error;
  std::error_code ec;
  const bool in_config = !config.empty() && std::filesystem::exists(config, ec) &&
                         fetch::read_aws_credentials(config, profile, from_config, config_error, true, &role);
  if (role.arn.empty() && !role.sso() && fetch::read_aws_credentials(path, profile, aws, error, false, &role) &&
      role.arn.empty() && !role.sso()) {
    aws.profile = profile;
    if (!aws.process.empty()) return run_aws_process(aws, run, error);
    aws.credentials_file = path;
    return true;
  }
  if (!role.arn.empty()) {
    aws.profile = profile;
    return profile_role(aws, role, profile, env, a.string("region"), path, config, error) &&
           (!aws.process_is_source() || run_aws_process(aws, run, error));
  }
  if (role.sso()) {
    aws.profile = profile;
    return profile_sso(aws, role, profile, env, config, error);
  }
  if (in_config) {
    aws = std::move(from_config);
    aws.profile = profile;
    return aws.process.empty() || run_aws_process(aws, run, error);
  }
  if (!named) {
    std::string container_error;
    if (!container_endpoint(aws, env, container_error)) {
      error = std::move(container_error);
      return false;
    }
    if (!aws.endpoint.empty()) return true;
    if (!instance_metadata(aws, env, "/sys", container_error)) {
      error = std::move(container_error);
      return false;
    }
    if (!aws.endpoint.empty()) return true;
    error = fmt::format(
        "no credentials: give access_key_id and secret_access_key or a credential_process, set AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY or AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE, name a profile of a credentials "
        "file or of the AWS config file ({}), run where "
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or _FULL_URI names a container's credentials endpoint, or on an EC2 "
        "instance with a role (or set AWS_EC2_METADATA_SERVICE_ENDPOINT)",
        error);
  }
  return false;
}

void check(const Config& c, const Location&, Diagnostics& diags) {
  // libcurl reads 0 as no limit at all (300 s for a connection): a server that stops sending would
  // hold its request, and the run, for ever.
  if (c.has("timeout") && c.duration("timeout") <= std::chrono::nanoseconds::zero()) {
    diags.error(c.where("timeout"),
                "timeout: must be more than 0 (a request without a time limit could wait for ever "
                "on a server that stops sending; a large download wants a long one: 1h)");
  }
  if (c.has("connect_timeout") && c.duration("connect_timeout") <= std::chrono::nanoseconds::zero()) {
    diags.error(c.where("connect_timeout"), "connect_timeout: must be more than 0 (libcurl would wait 300 s)");
  }
  if (c.has("read_timeout") && c.duration("read_timeout") <= std::chrono::nanoseconds::zero()) {
    diags.error(c.where("read_timeout"), "read_timeout: must be more than 0 (leave it out for none)");
  }
  std::string method = c.string("method");
  const char* bodies[] = {"body", "json", "form"};
  for (const char* body : bodies) {
    if (c.has(body) && (method == "GET" || method == "HEAD")) {
      diags.error(c.where(body), fmt::format("{} is sent only with POST, PUT, PATCH or DELETE, not {}", body, method));
    }
  }
  if (const Config& r = c.object("retries"); r.has("idempotency_key")) {
    const std::string name = r.string("idempotency_key");
    if (!fetch::is_header_name(name)) {
      diags.error(r.where("idempotency_key"), fmt::format("retries.idempotency_key: '{}' is not a header name "
                                                          "(letters, digits and !#$%&'*+-.^_`|~, no spaces or colons)",
                                                          name));
    } else if (method != "POST" && method != "PATCH") {
      diags.error(r.where("idempotency_key"),
                  fmt::format("retries.idempotency_key: a {} is idempotent and retried without a key; the key is "
                              "for POST and PATCH",
                              method));
    } else if (c.has("cache")) {
      diags.error(r.where("idempotency_key"),
                  "retries.idempotency_key: cache answers a request again without sending it, and a request that "
                  "needs a key of its own (a payment, an order) is not one to answer so");
    }
  }
  if (method == "HEAD" && c.has("download")) {
    diags.error(c.where("download"), "download: method HEAD brings no body to write (its headers only): use GET");
  }
  if (std::count_if(std::begin(bodies), std::end(bodies), [&](const char* b) { return c.has(b); }) > 1) {
    diags.error(c.where(c.has("form") ? "form" : "json"),
                "give one of body (text), json (a value sent as JSON) and form (fields sent as a web form)");
  }
  if (c.has("form")) form_body_template(c.map("form"), diags);
  if (c.has("json")) {
    std::string text;
    json_body_template(c.at("json"), "json", text, diags);
  }
  if (c.has("ca_file")) {
    const std::string path = c.string("ca_file");
    std::error_code ec;
    const auto status = std::filesystem::status(path, ec);
    if (!ec && !std::filesystem::is_regular_file(status)) {  // (a FIFO's open() would wait for a writer)
      diags.error(c.where("ca_file"), fmt::format("ca_file: '{}' is not a regular file", path));
    } else if (!std::ifstream(path).good()) {
      diags.error(c.where("ca_file"), fmt::format("ca_file: cannot read '{}'", path));
    }
  }
  if (c.has("client_key") && !c.has("client_cert")) {
    diags.error(c.where("client_key"), "client_key: give the certificate it goes with as client_cert");
  } else if (c.has("client_cert")) {
    std::string error;
    if (!fetch::check_client_certificate(c.string("client_cert"), c.has("client_key") ? c.string("client_key") : "",
                                         error)) {
      diags.error(c.where(c.has("client_key") ? "client_key" : "client_cert"), "client_cert: " + error);
    }
  }
  if (c.has("proxy") && !c.list("proxies").empty()) {
    diags.error(c.where("proxies"), "proxies: give either proxy (one) or proxies (several, in turn), not both");
  }
  if (c.string("proxy_auth") != "basic") {  // (a proxy from the environment is not known here)
    const bool ntlm = c.string("proxy_auth") == "ntlm";
    if (c.has("proxy") && c.string("proxy") == "none") {
      diags.error(c.where("proxy_auth"), "proxy_auth: proxy is none: there is no proxy to prove credentials to");
    } else if (c.has("proxy")) {
      const std::string error = fetch::check_proxy_credentials(c.string("proxy"), ntlm);
      if (!error.empty()) diags.error(c.where("proxy"), "proxy: for proxy_auth: " + error);
    }
    for (const auto& p : c.list("proxies")) {
      const std::string error = fetch::check_proxy_credentials(std::get<Value>(p.v).to_text(), ntlm);
      if (!error.empty()) diags.error(p.where, "proxies: for proxy_auth: " + error);
    }
  }
  if (c.has("netrc")) {
    std::string error;
    if (!fetch::read_netrc(c.string("netrc"), error)) diags.error(c.where("netrc"), "netrc: " + error);
    for (const char* other : {"auth", "oauth2", "aws_sigv4"}) {
      if (c.has(other)) {
        diags.error(c.where("netrc"), fmt::format("netrc: {} gives every host's credentials already: give one or the "
                                                  "other (a hosts entry's auth goes beside netrc)",
                                                  other));
      }
    }
    no_authorization(c.map("headers"), "headers", "netrc sends the Authorization header (to the hosts it names)",
                     diags);
  }
  if (c.has("cookie_file")) {
    std::string error;
    if (!fetch::read_cookie_file(c.string("cookie_file"), error))
      diags.error(c.where("cookie_file"), "cookie_file: " + error);
  }
  std::map<std::string, std::string> patterns;  // lower case -> as written
  for (const auto& [pattern, value] : c.map("hosts")) {
    if (auto [it, fresh] = patterns.emplace(nodes::to_lower(pattern), pattern); !fresh) {
      diags.error(value.where,
                  fmt::format("hosts: '{}' repeats '{}' (host names are compared without case)", pattern, it->second));
    }
  }
  check_headers(c.map("headers"), "headers", diags);
  for (const auto& [pattern, value] : c.map("hosts")) {
    const Config& h = *std::get<ConfigValue::Object>(value.v);
    check_headers(h.map("headers"), fmt::format("hosts.{}.headers", pattern), diags);
  }
  if (c.has("cache") && c.object("cache").boolean("stale_if_error") && !c.object("cache").has("max_age")) {
    diags.error(c.object("cache").where("stale_if_error"),
                "cache: stale_if_error needs a max_age (without one no response is ever old, and every one is "
                "answered from the cache)");
  }
  if (c.has("cache")) {
    fetch::StatusSet kept;
    for (const auto& s : c.object("cache").list("keep_status")) kept.add(std::get<Value>(s.v).to_text());
    for (const auto& s : c.object("retries").list("on_status")) {
      const auto* status = std::get<Value>(s.v).as_int();
      if (status && kept.contains(*status)) {
        diags.error(c.object("cache").where("keep_status"),
                    fmt::format("cache.keep_status: {} is retried (retries.on_status), and a retried status is "
                                "never kept",
                                *status));
      }
    }
  }
  if (c.has("cache") && c.has("download")) {
    diags.error(c.where("cache"),
                "cache: a download's files are not kept in the cache (download's exists: keep "
                "keeps the files a run fetched before)");
  }
  {  // at most one way to authenticate the requests
    const char* given = nullptr;
    for (const char* name : {"oauth2", "auth", "aws_sigv4"}) {
      if (!c.has(name)) continue;
      if (given) {
        diags.error(c.where(name),
                    fmt::format("{}: {} authenticates the requests already: give one or the other", name, given));
      }
      given = given ? given : name;
    }
  }
  if (c.has("aws_sigv4")) {
    const Config& aws = c.object("aws_sigv4");
    const char* const names[] = {"region",        "service", "access_key_id",    "secret_access_key",
                                 "session_token", "profile", "credentials_file", "credential_process"};
    bool said = false;  // an error about a field already: the credentials' own error would repeat it
    for (const char* name : names) {
      if (aws.has(name) && aws.string(name).empty()) {
        diags.error(aws.where(name),
                    fmt::format("aws_sigv4.{}: empty (is the environment variable it names set?)", name));
      } else if (aws.has(name) && (name == std::string_view("region") || name == std::string_view("service")) &&
                 aws.string(name).find_first_of(": \t/") != std::string::npos) {
        diags.error(aws.where(name), fmt::format("aws_sigv4.{}: '{}' is no AWS {} name (no colons, slashes or spaces)",
                                                 name, aws.string(name), name));
      } else {
        continue;
      }
      said = true;
    }
    const bool key = aws.has("access_key_id"), secret = aws.has("secret_access_key");
    if (key != secret) {
      diags.error(aws.where(key ? "access_key_id" : "secret_access_key"),
                  "aws_sigv4: access_key_id and secret_access_key go together (or neither: the environment's "
                  "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile of a credentials file)");
    } else if ((key || aws.has("credential_process")) &&
               (aws.has("profile") || aws.has("credentials_file") || (key && aws.has("credential_process")))) {
      const char* other = aws.has("profile")            ? "profile"
                          : aws.has("credentials_file") ? "credentials_file"
                                                        : "credential_process";
      diags.error(
          aws.where(other),
          fmt::format("aws_sigv4.{}: {} the credentials already: give one or the other", other,
                      key ? "access_key_id and secret_access_key are" : "the command credential_process names gives"));
    } else if (!key && aws.has("session_token")) {
      diags.error(aws.where("session_token"),
                  "aws_sigv4.session_token: goes with access_key_id and secret_access_key (a profile's is in its "
                  "file, the environment's in AWS_SESSION_TOKEN)");
    } else if (!said) {
      fetch::FetchOptions::Aws found;
      std::string error;
      if (!aws_credentials(aws, found, error)) {
        const char* field = aws.has("profile") ? "profile" : aws.has("credentials_file") ? "credentials_file" : "";
        diags.error(*field ? aws.where(field) : c.where("aws_sigv4"),
                    fmt::format("aws_sigv4{}{}: {}", *field ? "." : "", field, error));
      }
    }
  }
  if (c.has("auth")) check_auth(c.object("auth"), "auth", diags);
  for (const auto& [pattern, value] : c.map("hosts")) {
    const Config& host = *std::get<ConfigValue::Object>(value.v);
    if (!host.has("auth")) continue;
    const std::string name = fmt::format("hosts.{}.auth", pattern);
    check_auth(host.object("auth"), name, diags);
    for (const char* other : {"oauth2", "aws_sigv4"}) {
      if (c.has(other)) {
        diags.error(host.where("auth"),
                    fmt::format("{}: {} authenticates the requests already: give one or the other", name, other));
      }
    }
    if (!c.has("oauth2") && !c.has("auth") && !c.has("aws_sigv4")) {  // (else told below already)
      const std::string sender = fmt::format("{} sends the Authorization header to {}", name, pattern);
      no_authorization(c.map("headers"), "headers", sender, diags);
      no_authorization(host.map("headers"), fmt::format("hosts.{}.headers", pattern), sender, diags);
    }
  }
  if (c.has("oauth2") || c.has("auth") || c.has("aws_sigv4")) {
    const char* sender = c.has("oauth2") ? "oauth2 sends the Authorization header (its token)"
                         : c.has("auth") ? "auth sends the Authorization header"
                                         : "aws_sigv4 sends the Authorization header (the signature)";
    no_authorization(c.map("headers"), "headers", sender, diags);
    for (const auto& [pattern, value] : c.map("hosts")) {
      no_authorization(std::get<ConfigValue::Object>(value.v)->map("headers"), fmt::format("hosts.{}.headers", pattern),
                       sender, diags);
    }
  }
  if (c.has("oauth2")) {
    const Config& oauth2 = c.object("oauth2");
    for (const char* name : {"client_id", "client_secret", "refresh_token"}) {
      if (oauth2.has(name) && oauth2.string(name).empty()) {
        diags.error(oauth2.where(name),
                    fmt::format("oauth2.{}: empty (is the environment variable it names set?)", name));
      }
    }
    const bool refresh = oauth2.has("refresh_token") || oauth2.has("refresh_token_file");
    const bool key_auth = oauth2.string("client_auth") == "private_key_jwt";
    const bool tls_auth = oauth2.string("client_auth") == "tls_client_auth";
    const bool jwt = oauth2.has("jwt") && !key_auth;  // the JWT bearer grant
    if (key_auth) {
      if (!oauth2.has("jwt")) {
        diags.error(oauth2.where("client_auth"),
                    "oauth2: client_auth: private_key_jwt signs with jwt.key_file: give it");
      }
      if (oauth2.has("client_secret")) {
        diags.error(oauth2.where("client_secret"),
                    "oauth2: client_auth: private_key_jwt proves the client with its key, not a secret");
      }
      if (oauth2.has("jwt")) {
        for (const char* name : {"issuer", "subject"}) {
          if (oauth2.object("jwt").has(name)) {
            diags.error(oauth2.object("jwt").where(name),
                        fmt::format("oauth2.jwt.{}: with client_auth: private_key_jwt it is the client_id", name));
          }
        }
      }
    }
    if (tls_auth) {
      if (!c.has("client_cert")) {
        diags.error(oauth2.where("client_auth"),
                    "oauth2: client_auth: tls_client_auth proves the client with its TLS certificate: give the "
                    "node's client_cert (and client_key)");
      }
      if (oauth2.has("client_secret")) {
        diags.error(oauth2.where("client_secret"),
                    "oauth2: client_auth: tls_client_auth proves the client with its certificate, not a secret");
      }
      std::string error;  // (a token_url that is no URL has its own error)
      const auto key =
          oauth2.has("token_url") ? fetch::parse_host_key(oauth2.string("token_url"), error) : std::nullopt;
      if (key && key->starts_with("http://") && check_token_url(Value(oauth2.string("token_url"))).empty()) {
        diags.error(oauth2.where("token_url"),
                    fmt::format("oauth2.token_url: '{}': client_auth: tls_client_auth presents the certificate "
                                "in a TLS handshake, so it goes over https",
                                hide_credentials(oauth2.string("token_url"))));
      }
    }
    const bool assertion = oauth2.has("client_assertion_file");
    if (assertion) {
      std::string error;
      if (!fetch::read_client_assertion(oauth2.string("client_assertion_file"), error)) {
        diags.error(oauth2.where("client_assertion_file"), "oauth2.client_assertion_file: " + error);
      }
      const char* other = oauth2.has("client_secret") ? "client_secret"
                          : oauth2.has("jwt")         ? "jwt"
                          : key_auth || tls_auth      ? "client_auth"
                                                      : nullptr;
      if (other) {
        diags.error(
            oauth2.where(other),
            fmt::format("oauth2.{}: client_assertion_file proves the client already: give one or the other", other));
      }
    }
    if (oauth2.has("service_account_impersonation_url") && (!oauth2.has("scope") || oauth2.string("scope").empty())) {
      diags.error(oauth2.where("service_account_impersonation_url"),
                  "oauth2.service_account_impersonation_url: give the scope the service account's token is for "
                  "(https://www.googleapis.com/auth/cloud-platform)");
    }
    const bool exchange = oauth2.has("subject_token_file");  // the token exchange grant
    if (exchange) {
      std::string error;
      if (!fetch::read_subject_token(oauth2.string("subject_token_file"), error)) {
        diags.error(oauth2.where("subject_token_file"), "oauth2.subject_token_file: " + error);
      }
    } else if (oauth2.has("subject_token_type")) {
      diags.error(oauth2.where("subject_token_type"),
                  "oauth2.subject_token_type: it says what subject_token_file holds: give that file");
    }
    if (const std::string type = oauth2.has("subject_token_type") ? oauth2.string("subject_token_type") : "x";
        type.empty() || !fetch::header_value_ok(type) || type.find_first_of(" \t") != std::string::npos) {
      diags.error(oauth2.where("subject_token_type"),
                  "oauth2.subject_token_type: a token type URI (urn:ietf:params:oauth:token-type:jwt)");
    }
    if (oauth2.has("refresh_token") && oauth2.has("refresh_token_file")) {
      diags.error(oauth2.where("refresh_token_file"),
                  "oauth2: give either refresh_token or refresh_token_file (where a new one is kept), not both");
    } else if (jwt && refresh) {
      diags.error(oauth2.where("jwt"), "oauth2: jwt and a refresh token are two grants: give one");
    } else if (exchange && (jwt || refresh)) {
      diags.error(
          oauth2.where("subject_token_file"),
          fmt::format("oauth2: subject_token_file and {} are two grants: give one", jwt ? "jwt" : "a refresh token"));
    } else if (!refresh && !jwt && !exchange && !key_auth && !tls_auth && !assertion && !oauth2.has("client_secret")) {
      diags.error(c.where("oauth2"),
                  "oauth2: client_secret is required (the client credentials grant), unless a refresh_token, "
                  "refresh_token_file, jwt, subject_token_file or client_assertion_file is given, or client_auth is "
                  "private_key_jwt or tls_client_auth");
    }
    if (!jwt && !exchange && !oauth2.has("client_id")) {
      diags.error(c.where("oauth2"), "oauth2: client_id is required");
    }
    if ((jwt || exchange) && oauth2.has("client_secret") && !oauth2.has("client_id")) {
      diags.error(oauth2.where("client_secret"), "oauth2: client_secret without client_id");
    }
    std::optional<fetch::JwtKey> key;
    if (oauth2.has("jwt")) {
      const Config& j = oauth2.object("jwt");
      std::string error;
      key = fetch::read_jwt_key(j.string("key_file"), error);
      if (!key) {
        diags.error(j.where("key_file"), "oauth2.jwt.key_file: " + error);
      } else if (j.has("certificate") &&
                 !fetch::read_jwt_certificate(*key, j.string("key_file"), j.string("certificate"), error)) {
        diags.error(j.where("certificate"), "oauth2.jwt.certificate: " + error);
      } else if (!key_auth && !j.has("issuer") && key->client_email.empty()) {
        diags.error(oauth2.where("jwt"),
                    "oauth2.jwt: issuer is required (a PEM key file does not say who the client is)");
      }
    }
    if (!oauth2.has("token_url")) {
      if (key && !key->token_uri.empty()) {
        if (std::string error = check_token_url(Value(key->token_uri)); !error.empty()) {
          diags.error(oauth2.object("jwt").where("key_file"), "oauth2.jwt.key_file: token_uri " + error);
        }
      } else if (!oauth2.has("jwt") || key) {
        diags.error(c.where("oauth2"), "oauth2: token_url is required");
      }
    }
    if (oauth2.has("refresh_token_file")) {
      std::string error;
      if (!fetch::read_refresh_token(oauth2.string("refresh_token_file"), error)) {
        diags.error(oauth2.where("refresh_token_file"), "oauth2.refresh_token_file: " + error);
      }
    }
    for (const auto& [name, value] : oauth2.map("params")) {
      if (name == "scope") {
        diags.error(value.where, "oauth2.params: give the scope as oauth2's scope");
      } else if (name == "grant_type" || name == "client_id" || name == "client_secret" || name == "refresh_token" ||
                 name == "assertion" || name == "client_assertion" || name == "client_assertion_type" ||
                 name == "subject_token" || name == "subject_token_type" || name == "requested_token_type") {
        diags.error(value.where, fmt::format("oauth2.params: '{}' is fetch's to send (the {} grant)", name,
                                             jwt        ? "JWT bearer"
                                             : refresh  ? "refresh token"
                                             : exchange ? "token exchange"
                                                        : "client credentials"));
      }
    }
  }
  if (!fetch::header_value_ok(c.string("user_agent"))) {
    diags.error(c.where("user_agent"), "user_agent: a header value cannot hold a line break");
  }
}

fetch::FetchOptions options_from(const Config& c, const std::stop_token& stop) {
  fetch::FetchOptions o;
  o.url_field = c.string("url_field");
  o.method = c.string("method");
  for (const auto& [name, value] : c.map("headers")) {
    o.headers.emplace_back(name, *FieldTemplate::compile(std::get<Value>(value.v).to_text()));
  }
  if (c.has("body")) o.body = FieldTemplate::compile(c.string("body"));
  if (c.has("json") || c.has("form")) {
    std::string text;
    Diagnostics checked;  // reported by check()
    if (c.has("json")) {
      json_body_template(c.at("json"), "json", text, checked);
    } else {
      text = form_body_template(c.map("form"), checked);
    }
    o.body = FieldTemplate::compile(text);
    const auto& headers = c.map("headers");
    if (std::none_of(headers.begin(), headers.end(), [](const auto& h) { return iequals(h.first, "content-type"); })) {
      o.headers.emplace_back(
          "Content-Type",
          *FieldTemplate::compile(c.has("json") ? "application/json" : "application/x-www-form-urlencoded"));
    }
  }
  o.user_agent = c.string("user_agent");
  o.timeout = c.duration("timeout");
  o.connect_timeout = c.duration("connect_timeout");
  if (c.has("read_timeout")) o.read_timeout = c.duration("read_timeout");
  o.max_body = c.size("max_body");
  o.max_redirects = static_cast<int>(c.integer("max_redirects"));
  o.compressed = c.boolean("compressed");
  o.http2 = c.boolean("http2");
  o.cookies = c.boolean("cookies");
  if (c.has("cookie_file")) o.cookie_file = c.string("cookie_file");
  if (c.has("netrc")) {
    std::string error;
    auto entries = fetch::read_netrc(c.string("netrc"), error);
    if (!entries) throw NodeError("netrc: " + error);  // (changed since the pipeline was checked)
    o.netrc = std::move(*entries);
  }
  if (c.has("ca_file")) o.ca_file = c.string("ca_file");
  if (c.has("client_cert")) o.client_cert = c.string("client_cert");
  if (c.has("client_key")) o.client_key = c.string("client_key");
  if (c.has("proxy")) o.proxy = c.string("proxy") == "none" ? std::string() : c.string("proxy");
  for (const auto& p : c.list("proxies")) o.proxies.push_back(std::get<Value>(p.v).to_text());
  o.proxy_auth = auth_scheme(c.string("proxy_auth"));
  o.per_host = static_cast<int>(c.integer("per_host"));
  o.adaptive = c.boolean("adaptive");
  if (c.has("rate")) o.rate = *fetch::parse_rate(c.string("rate"));
  o.burst = static_cast<int>(c.integer("burst"));
  for (const auto& [pattern, value] : c.map("hosts")) {
    const Config& h = *std::get<ConfigValue::Object>(value.v);
    fetch::HostLimits limits{o.per_host, o.rate, o.burst, static_cast<int>(o.host_headers.size())};
    auto& headers = o.host_headers.emplace_back();
    for (const auto& [name, header] : h.map("headers"))
      headers.emplace_back(name, *FieldTemplate::compile(std::get<Value>(header.v).to_text()));
    if (h.has("per_host")) limits.per_host = static_cast<int>(h.integer("per_host"));
    if (h.has("rate")) limits.rate = h.string("rate") == "none" ? 0 : *fetch::parse_rate(h.string("rate"));
    if (h.has("burst")) limits.burst = static_cast<int>(h.integer("burst"));
    o.host_auth.push_back(h.has("auth") ? std::optional(auth_options(h.object("auth"))) : std::nullopt);
    o.host_limits.emplace_back(pattern, limits);
  }
  const Config& r = c.object("retries");
  o.retry.attempts = static_cast<int>(r.integer("attempts"));
  o.retry.on_status.clear();
  for (const auto& s : r.list("on_status")) o.retry.on_status.push_back(*std::get<Value>(s.v).as_int());
  o.retry.on_timeout = o.retry.on_connect = o.retry.on_reset = false;
  for (const auto& f : r.list("on")) {
    std::string name = std::get<Value>(f.v).to_text();
    (name == "timeout" ? o.retry.on_timeout : name == "connect" ? o.retry.on_connect : o.retry.on_reset) = true;
  }
  o.retry.non_idempotent = r.boolean("non_idempotent");
  if (r.has("idempotency_key")) o.retry.idempotency_key = r.string("idempotency_key");
  o.retry.base = r.duration("base");
  o.retry.max = r.duration("max");
  const Config& b = c.object("circuit_breaker");
  o.breaker_threshold = static_cast<int>(b.integer("failure_threshold"));
  o.breaker_recovery = b.duration("recovery_timeout");
  for (const auto& s : c.list("ok_status")) o.ok_status.add(std::get<Value>(s.v).to_text());
  for (const auto& m : c.list("content_types")) o.content_types.add(std::get<Value>(m.v).to_text());
  for (const auto& h : c.list("keep_headers")) {
    std::string name = std::get<Value>(h.v).to_text();
    for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    o.keep_headers.push_back(name);
  }
  o.body_field = c.string("body_field");
  o.error_body = c.boolean("error_body");
  if (c.has("download")) {
    const Config& d = c.object("download");
    std::string dir = d.string("dir");
    while (dir.size() > 1 && dir.ends_with('/')) dir.pop_back();
    o.download = fetch::FetchOptions::Download{};
    o.download->dir = dir.empty() ? std::string(".") : std::move(dir);
    if (d.has("path")) {
      o.download->path = FieldTemplate::compile(d.string("path"));
      const auto fields = o.download->path->fields();
      o.download->served = std::find(fields.begin(), fields.end(), "server_filename") != fields.end();
    }
    o.download->keep = d.string("exists") == "keep";
    o.download->sha256 = d.boolean("sha256");
  }
  if (c.has("cache")) {
    const Config& k = c.object("cache");
    o.cache = fetch::FetchOptions::Cache{};
    o.cache->path = k.string("path");
    if (k.has("max_age")) o.cache->max_age = k.duration("max_age");
    o.cache->offline = k.boolean("offline");
    o.cache->stale_if_error = k.boolean("stale_if_error");
    for (const auto& st : k.list("keep_status")) o.cache->keep_status.add(std::get<Value>(st.v).to_text());
  }
  o.robots = c.string("robots") == "obey";
  o.refuse_private = c.string("private_addresses") == "refuse";
  o.robots_max_age = c.duration("robots_max_age");
  o.max_crawl_delay = c.duration("max_crawl_delay");
  o.rate_limit_headers = c.boolean("rate_limit_headers");
  if (c.has("auth")) o.auth = auth_options(c.object("auth"));
  if (c.has("aws_sigv4")) {
    const Config& a = c.object("aws_sigv4");
    o.aws = fetch::FetchOptions::Aws{};
    o.aws->region = a.string("region");
    o.aws->service = a.string("service");
    std::string error;
    if (!aws_credentials(a, *o.aws, error, &stop)) {
      if (stop.stop_requested()) throw StoppedWhileMade("aws_sigv4: " + error);  // a credential_process stopped
      throw NodeError("aws_sigv4: " + error);  // (changed since checked, or a credential_process that failed)
    }
  }
  if (c.has("oauth2")) {
    const Config& a = c.object("oauth2");
    o.oauth2 = fetch::FetchOptions::OAuth2{};
    if (a.has("token_url")) o.oauth2->token_url = a.string("token_url");
    if (a.has("client_id")) o.oauth2->client_id = a.string("client_id");
    if (a.has("jwt")) {
      const Config& j = a.object("jwt");
      auto& jwt = o.oauth2->jwt.emplace();
      jwt.key_file = j.string("key_file");
      for (auto [name, field] :
           {std::pair{"issuer", &jwt.issuer}, std::pair{"subject", &jwt.subject}, std::pair{"audience", &jwt.audience},
            std::pair{"key_id", &jwt.key_id}, std::pair{"certificate", &jwt.certificate}}) {
        if (j.has(name)) *field = j.string(name);
      }
    }
    if (a.has("client_secret")) o.oauth2->client_secret = a.string("client_secret");
    if (a.has("refresh_token")) o.oauth2->refresh_token = a.string("refresh_token");
    if (a.has("refresh_token_file")) o.oauth2->refresh_token_file = a.string("refresh_token_file");
    if (a.has("scope")) o.oauth2->scope = a.string("scope");
    for (const auto& [name, value] : a.map("params"))
      o.oauth2->params.emplace_back(name, std::get<Value>(value.v).to_text());
    o.oauth2->basic = a.string("client_auth") == "basic";
    o.oauth2->private_key_jwt = a.string("client_auth") == "private_key_jwt";
    if (a.has("client_assertion_file")) o.oauth2->client_assertion_file = a.string("client_assertion_file");
    if (a.has("subject_token_file")) o.oauth2->subject_token_file = a.string("subject_token_file");
    if (a.has("service_account_impersonation_url"))
      o.oauth2->impersonation_url = a.string("service_account_impersonation_url");
    o.oauth2->subject_token_type =
        a.has("subject_token_type") ? a.string("subject_token_type") : "urn:ietf:params:oauth:token-type:jwt";
  }
  return o;
}

}  // namespace

NodeType fetch_type() {
  NodeType t;
  t.name = "fetch";
  t.kind = NodeKind::async;
  t.summary = "fetches each record's URL over HTTP(S) on a dedicated libcurl I/O thread";
  t.ports = transform_ports();
  t.schema = Schema(
      {
          FieldSpec::string("url_field", "the field that holds the URL").with_default("url"),
          FieldSpec::enumeration("method", {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"},
                                 "HTTP method (HEAD: the headers only); kept past redirects, but a 303 or a POST's 301 "
                                 "or 302 continues as a GET")
              .with_default("GET"),
          FieldSpec::map("headers", FieldSpec::string("value", "a header value; may use {field} templates"),
                         "request headers: name -> value; an empty one is not sent, and one that a record's field "
                         "would give a line break fails that record (reason invalid)")
              .with_default(""),
          // A JSON body's braces are a template's unless doubled: '{"a": 1}' would be sent empty.
          FieldSpec::string("body", "request body for POST/PUT/PATCH/DELETE; may use {field} templates")
              .validated_by(nodes::check_template),
          FieldSpec::any("json",
                         "request body for POST/PUT/PATCH/DELETE written in YAML and sent as JSON (with Content-Type: "
                         "application/json): a string that is one {field} alone is the field's value as JSON (a "
                         "missing field null); other strings go as written, braces and all (a GraphQL query)"),
          FieldSpec::map(
              "form",
              FieldSpec::string("value", "a field's value; may use {field} templates")
                  .validated_by(nodes::check_template),
              "request body for POST/PUT/PATCH/DELETE sent as a web form (application/x-www-form-urlencoded): "
              "name -> value, names and values percent-encoded, {field}s too"),
          FieldSpec::string("user_agent",
                            "the User-Agent header; a User-Agent in `headers` replaces it for pages, robots.txt "
                            "requests always send this one")
              .with_default("sluice/0.1"),
          FieldSpec::duration("timeout", "total time for one attempt").with_default("30s"),
          FieldSpec::duration("connect_timeout", "time to establish a connection").with_default("10s"),
          FieldSpec::duration("read_timeout",
                              "longest wait for the next bytes of an attempt once its request is sent (its response's "
                              "first ones too; connecting is connect_timeout's): a stalled transfer fails with reason "
                              "timeout within it, whatever time timeout leaves "
                              "(a large download's long timeout); default: none"),
          FieldSpec::size(
              "max_body",
              "cap on the decoded body; larger responses fail with reason too_large (a HEAD's Content-Length is "
              "not held to it: no body comes)")
              .with_default("10MiB"),
          FieldSpec::integer("max_redirects", "redirects followed per request (0: return the 3xx response)")
              .with_default("5")
              .at_least(0),
          FieldSpec::boolean("compressed", "ask for gzip, deflate, br and zstd, and decode them").with_default("true"),
          FieldSpec::boolean("http2", "use HTTP/2 over TLS where the server offers it").with_default("true"),
          FieldSpec::boolean("cookies", "keep cookies between requests of this node").with_default("false"),
          FieldSpec::string("netrc",
                            "a netrc file (~/.netrc, as curl, git and ftp read it: machine NAME login USER password "
                            "PASSWORD, and default): each host's credentials, sent with HTTP Basic to the hosts "
                            "auth gives none (not past a redirect to another origin, nor with robots.txt); read when "
                            "the pipeline loads"),
          FieldSpec::string(
              "cookie_file",
              "a Netscape cookie file (cookies.txt: a browser's export, `curl -c`) whose cookies this node "
              "starts with, a logged-in session say; implies cookies: true"),
          FieldSpec::string("ca_file",
                            "PEM file of the certificate authorities to trust instead of the system's (a private CA); "
                            "certificates and host names are always verified"),
          FieldSpec::string("client_cert",
                            "a client certificate (PEM) for mutual TLS: presented to a server that asks for one in "
                            "the handshake (an API that authenticates clients so, oauth2's token_url included)"),
          FieldSpec::string("client_key",
                            "client_cert's private key (PEM, no passphrase); default: in client_cert's file"),
          FieldSpec::string("proxy",
                            "the proxy for this node's requests, robots.txt included: http://[user:password@]host:port "
                            "(also https, socks5, socks5h); none: no proxy; default: the usual environment variables")
              .validated_by(check_proxy),
          FieldSpec::list("proxies", FieldSpec::string("proxy", "a proxy URL").validated_by(check_proxy_entry),
                          "several proxies, taken in turn by the requests (robots.txt included); one that fails "
                          "circuit_breaker.failure_threshold requests in a row (no connection, timeout, reset) is left "
                          "out for recovery_timeout; results get a proxy field (scheme://host:port)")
              .with_default(""),
          FieldSpec::enumeration("proxy_auth", {"basic", "digest", "ntlm"},
                                 "how the proxy URL's user:password are proved to an HTTP proxy: basic (sent with "
                                 "each request), digest (answers the proxy's 407 challenge) or ntlm (a corporate "
                                 "proxy: NTLMv2, user as DOMAIN%5Cuser in the URL, ASCII; once per connection)")
              .with_default("basic"),
          FieldSpec::integer("per_host", "requests in flight per host").with_default("8").at_least(1),
          FieldSpec::boolean("adaptive",
                             "per_host is each host's ceiling: its allowance halves when it signals overload (429, "
                             "502, 503, 504, timeout, connect, reset) and grows back by one per round of successes")
              .with_default("false"),
          FieldSpec::string("rate", "requests per host per unit (token bucket): 10/s, 600/m").validated_by(check_rate),
          FieldSpec::integer("burst", "requests a host may receive at once under `rate`").with_default("1").at_least(1),
          FieldSpec::map(
              "hosts", FieldSpec::object_of("host", host_limits_schema(), "{per_host, rate, burst, headers, auth}"),
              "other limits for some hosts: a host name (api.example.com) or *.example.com (the names "
              "below it) -> {per_host, rate, burst, headers, auth}; what an entry leaves out is the node's; an exact "
              "name wins over *., a longer *. over a shorter")
              .keys_validated_by(check_host_pattern)
              .with_default(""),
          FieldSpec::object_of("retries", retries_schema(), "when and how failed requests are retried")
              .with_default("{}"),
          FieldSpec::object_of("circuit_breaker", breaker_schema(), "per host: fail fast while a host keeps failing")
              .with_default("{}"),
          FieldSpec::list("ok_status", FieldSpec::scalar("status", "200, 2xx or 200-299").validated_by(check_status),
                          "statuses that count as success; others are errors handled by on_error")
              .with_default("[2xx]"),
          FieldSpec::list(
              "content_types",
              FieldSpec::string("type", "text/html, or image/* for every image").validated_by(check_media_type),
              "media types a successful response may have (default: any); another is cut off at its "
              "first bytes and fails with reason content_type, not retried; a response without a "
              "Content-Type passes")
              .with_default(""),
          FieldSpec::list("keep_headers", FieldSpec::string("name", "a response header"),
                          "response headers kept as header_<name> fields (null when absent; repeated ones joined "
                          "with \", \"); a record that fails with an HTTP status or content_type gets them too, "
                          "with content_type, from the last answer (an API's request id)")
              .with_default("[etag, last-modified]"),
          FieldSpec::string("body_field", "the field that receives the response body").with_default("body"),
          FieldSpec::boolean("error_body",
                             "a record that fails with an HTTP status gets its last answer's body in body_field too "
                             "(an API's error, whole, for a store of failures; max_body holds it; with download as "
                             "well: an error is not a file)")
              .with_default("false"),
          FieldSpec::object_of("download", download_schema(),
                               "each successful body is written to a file of its own under dir as it arrives, "
                               "never held in memory (max_body still caps it), and renamed into place when whole; "
                               "the record gets file (its path) and file_size instead of the body"),
          FieldSpec::object_of("cache", cache_schema(),
                               "successful responses are kept in a SQLite file, and a request answered before "
                               "(same method, URL, body and headers) is answered from there, without a request: "
                               "for a pipeline run again while its parsing is written or fixed; such records "
                               "get cached: true, attempts 0 and the fetched_at of the response kept"),
          FieldSpec::enumeration("private_addresses", {"allow", "refuse"},
                                 "refuse: no connection to a loopback, private, link-local (cloud metadata) or "
                                 "other non-public address, checked after DNS and on every redirect; such a "
                                 "record fails with reason refused before its request is sent")
              .with_default("allow"),
          FieldSpec::enumeration("robots", {"obey", "ignore"},
                                 "obey: fetch each host's /robots.txt first, skip disallowed URLs (reason robots) "
                                 "and use its Crawl-delay as the host's rate")
              .with_default("obey"),
          FieldSpec::duration(
              "robots_max_age",
              "how long a host's robots.txt is used before it is fetched again (RFC 9309: a day at most)")
              .with_default("24h"),
          FieldSpec::duration("max_crawl_delay",
                              "a robots.txt Crawl-delay longer than this fails the host's URLs with reason robots "
                              "instead of fetching one per delay (a day's delay would hold the run for days)")
              .with_default("60s"),
          FieldSpec::boolean("rate_limit_headers",
                             "obey an API's rate-limit headers: when X-RateLimit-Remaining (or RateLimit-Remaining) "
                             "is 0, no request of the host starts before X-RateLimit-Reset (Unix seconds, or seconds "
                             "from now) or RateLimit-Reset (seconds), at most retries.max ahead; a 403 or 429 that "
                             "says so is retried then")
              .with_default("false"),
          FieldSpec::object_of(
              "auth", auth_schema(),
              "HTTP authentication with a user and password (an internal API, a Jira or Elasticsearch, a "
              "device, a Windows intranet): with each request (NTLM: each connection), not past a redirect to "
              "another origin, nor with robots.txt"),
          FieldSpec::object_of(
              "aws_sigv4",
              Schema({
                  FieldSpec::string("region", "the AWS region: us-east-1").make_required(),
                  FieldSpec::string("service",
                                    "the service: s3, execute-api (API Gateway), lambda, bedrock, es (OpenSearch), ...")
                      .with_default("s3"),
                  FieldSpec::string("access_key_id",
                                    "the access key's id; default: the environment's AWS_ACCESS_KEY_ID, else the "
                                    "profile's"),
                  FieldSpec::string("secret_access_key",
                                    "the secret access key, with access_key_id; default: the environment's "
                                    "AWS_SECRET_ACCESS_KEY, else the profile's"),
                  FieldSpec::string("session_token",
                                    "temporary credentials' session token, with access_key_id (sent as "
                                    "x-amz-security-token); default: the environment's AWS_SESSION_TOKEN or the "
                                    "profile's, else none"),
                  FieldSpec::string("profile",
                                    "the profile of the credentials file, else of the AWS config file, whose "
                                    "aws_access_key_id, aws_secret_access_key and aws_session_token sign, or whose "
                                    "credential_process gives them, or whose role_arn STS gives keys for (AssumeRole "
                                    "signed with its source_profile's keys or those its credential_process gives, "
                                    "that profile's role assumed first if it has one, or with its credential_source's: "
                                    "Environment, Ec2InstanceMetadata, "
                                    "EcsContainer; with its external_id, role_session_name and duration_seconds; or "
                                    "AssumeRoleWithWebIdentity with its web_identity_token_file), or whose SSO login "
                                    "(sso_session or sso_start_url, sso_account_id, sso_role_name; the token `aws "
                                    "sso login` cached, an sso_session's renewed by SSO OIDC when it nears its "
                                    "expiry and written back) IAM Identity Center gives an account's role's keys for, "
                                    "asked for again before they expire (as the AWS CLI reads them); default: "
                                    "$AWS_PROFILE, else default, when neither the keys nor the environment give "
                                    "credentials"),
                  FieldSpec::string("credentials_file",
                                    "the shared credentials file, read again when it changes during the run (renewed "
                                    "temporary credentials); default: $AWS_SHARED_CREDENTIALS_FILE, else "
                                    "~/.aws/credentials"),
                  FieldSpec::string("credential_process",
                                    "a command that prints the credentials as the AWS CLI's credential_process does "
                                    "(aws-vault exec --json NAME, granted, `aws configure export-credentials`): run "
                                    "with /bin/sh when the pipeline starts, and again before their Expiration, on a "
                                    "thread of its own; default: the profile's credential_process, in the credentials "
                                    "file or in the config file ($AWS_CONFIG_FILE, else ~/.aws/config)"),
              }),
              "AWS Signature Version 4 (S3 and S3-compatible storage, API Gateway, Lambda, Bedrock, OpenSearch): "
              "each request signed with the key as the AWS SDKs sign it, its body's SHA-256 sent as "
              "x-amz-content-sha256, its path and query sent in AWS's encoding; not past a redirect to another "
              "origin, nor with robots.txt. Without keys, a profile or a credential_process, and no keys in the "
              "environment: STS's keys for the role of a web identity token (AWS_ROLE_ARN, "
              "AWS_WEB_IDENTITY_TOKEN_FILE: EKS's IAM roles for service accounts); else, without the default "
              "profile, the keys of a container's credentials endpoint (ECS, Fargate, "
              "EKS Pod Identity: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or _FULL_URI), else on an EC2 instance its "
              "role's keys from the instance metadata service (IMDSv2, or IMDSv1; "
              "AWS_EC2_METADATA_SERVICE_ENDPOINT, AWS_EC2_METADATA_DISABLED), asked for again before they expire"),
          FieldSpec::object_of(
              "oauth2", oauth2_schema(),
              "an access token from an OAuth 2.0 authorization server (the client credentials grant, "
              "the refresh token grant with refresh_token, the JWT bearer grant with jwt, or the token "
              "exchange grant with subject_token_file), "
              "sent as Authorization: Bearer with each request (not past a redirect to another origin); "
              "asked for before the first request, again before it expires and when a request "
              "gets 401 with it (that request is sent again, once); when none can be had the "
              "records fail with reason auth; the fetch nodes of a run with the same oauth2 settings share "
              "one token"),
      },
      check);
  t.factory = [](const NodeContext& ctx) -> std::unique_ptr<Node> {
    static std::once_flag curl_ready;
    std::call_once(curl_ready, [] {
      // libcurl's own allocator, with one change: no call for a null pointer. Making and cleaning up
      // a handle (one per transfer, HttpLoop::recycle) frees every option it does not have, about
      // 300 free(nullptr) per transfer, and under oneTBB's malloc proxy each of those is a call into
      // tbbmalloc (about 25 instructions; glibc's takes 4). The same malloc and free underneath, so
      // memory libcurl took before this (curl_url()) or hands out (curl_free()) stays compatible.
      curl_global_init_mem(
          CURL_GLOBAL_DEFAULT, [](std::size_t n) { return std::malloc(n); },
          [](void* p) {
            if (p) std::free(p);
          },
          [](void* p, std::size_t n) { return std::realloc(p, n); }, [](const char* s) { return ::strdup(s); },
          [](std::size_t n, std::size_t size) { return std::calloc(n, size); });
    });
    fetch::FetchOptions options = options_from(ctx.config, ctx.stop);
    options.notice = ctx.notice;
    options.table = ctx.table;
    options.received = ctx.received;
    options.serves_site = !ctx.settings.serve.empty();
    options.state = ctx.state;
    return std::make_unique<Fetch>(std::move(options), ctx.id);
  };
  t.example = R"(- id: get
  type: fetch
  timeout: 10s
  per_host: 4
  rate: 5/s
  retries: {attempts: 4, base: 500ms, max: 20s}
  on_error: route)";
  return t;
}

}  // namespace sluice::nodes
