// What a fetch node's config becomes (fetch.cpp's options_from()): the settings its I/O thread
// (HttpLoop) works by.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "policy.hpp"
#include "sluice/template.hpp"

namespace sluice {
class RunState;
}

namespace sluice::fetch {

struct FetchOptions {
  std::string url_field = "url";
  std::string method = "GET";
  std::vector<std::pair<std::string, FieldTemplate>> headers;
  std::optional<FieldTemplate> body;
  std::string user_agent = "sluice/0.1";
  nanoseconds timeout = std::chrono::seconds(30);
  nanoseconds connect_timeout = std::chrono::seconds(10);
  // A transfer that neither sends nor receives a byte for this long fails as a timeout (the loop's
  // own check, end_stalled()); none when unset.
  std::optional<nanoseconds> read_timeout;
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
  // A record that fails with an HTTP status gets the answer's body in body_field (an API's error).
  bool error_body = false;
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
    std::string scope;                     // "": none asked for
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
    // The token exchange grant (RFC 8693): the token in this file (a CI job's or Kubernetes' OIDC
    // token; read again for each token request) exchanged for an access token, as Google's workload
    // identity federation and other security token services take it; `subject_token_type` says
    // what it is. The client's id and secret are optional with it.
    std::string subject_token_file, subject_token_type;
    // Google's service account impersonation: the grant's token is exchanged at this URL
    // (iamcredentials' generateAccessToken) for a token of the service account, for `scope`.
    std::string impersonation_url;
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
  std::vector<std::optional<Auth>> host_auth;  // by `hosts` entry (HostLimits::entry): its own auth
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
    // the I/O thread) before they expire; empty when they did not come from one. For a role
    // (process_is_source()), the command that gives the `source` keys (a source_profile's).
    std::string process;
    std::optional<std::chrono::system_clock::time_point> expires;  // the process's keys' Expiration
    // A container's credentials endpoint (ECS, Fargate, EKS Pod Identity: the environment's
    // AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or _FULL_URI), asked for the keys by the I/O thread
    // before the first signed request and again before they expire; "" when the keys came otherwise.
    // Its Authorization header: the token, or the token file's content (read for each request).
    std::string endpoint, endpoint_token, endpoint_token_file;
    // What `endpoint` is: a container's credentials endpoint; an EC2 instance's metadata service
    // (IMDS, http://169.254.169.254, or $AWS_EC2_METADATA_SERVICE_ENDPOINT): the keys of the
    // instance's role, asked for as IMDSv2 (a PUT for a session token first), or as IMDSv1 where
    // the service gives no token; or STS, asked to AssumeRoleWithWebIdentity (EKS's IAM roles for
    // service accounts, a CI's OIDC token): `role_arn` with the token in `endpoint_token_file`
    // (read for each request), as session `role_session`; or STS (`endpoint` is `sts`), asked to
    // AssumeRole with the `source` keys (a profile's source_profile's, or the environment's).
    // Or IAM Identity Center's portal (`endpoint`: GetRoleCredentials of an account's role), asked
    // with the token of an SSO login, read for each request from the login's cache file
    // `endpoint_token_file`.
    enum class Endpoint { container, instance, sts, assume_role, sso } kind = Endpoint::container;
    // The login of an sso-session is renewed when its token expires in less than 15 minutes (SSO
    // OIDC's CreateToken at `sso_renewal` with its refresh token; "" for a legacy profile's login,
    // which is not renewed), and the renewed login written back to its cache file, for the session's
    // `sso_start_url` and `sso_region`. `sso_profile`: the profile to log in again with.
    std::string sso_renewal, sso_start_url, sso_region, sso_profile;
    std::string role_arn, role_session;
    // A profile's roles, assumed in turn (STS's AssumeRole at `sts`, signed with the keys before:
    // those `kind` gives, then each role's): one, or a chain of source profiles' roles, the
    // profile's own last. `duration` in seconds (0: STS's own).
    struct Role {
      std::string arn, session, external_id;
      int duration = 0;
    };
    std::vector<Role> roles;
    std::string sts;
    struct Keys {
      std::string key_id, secret, session_token;
    } source;
    bool process_is_source() const { return !process.empty() && kind == Endpoint::assume_role; }
  };
  std::optional<Aws> aws;
  // The run serves a site in this process (settings.serve): a request to it holds both ends of its
  // connection, so the limit of open files allows half as many transfers.
  bool serves_site = false;
  // A resumable run's state (settings.state), else null: retries.idempotency_key derives the keys
  // from its run id, so that a resumed run sends a request again with the key it had.
  const RunState* state = nullptr;
};

}  // namespace sluice::fetch
