// The project's HTTP fixture server (cpp-httplib) for tests, smoke pipelines and benchmarks.
// Serves a directory plus endpoints that misbehave on purpose, and counts what it sees.
//
// Endpoints (GET unless noted):
//   /<path>                     a file under the root directory (404 when missing); when only
//                               <path>.redirect exists, a 301 to the URL on its first line; sent
//                               with the Content-Type on the first line of <path>.content-type
//                               when that file exists; with a strong ETag of its content, and
//                               304 Not Modified (no body) to an If-None-Match that names it
//   /status/<code>?body=B&type=T&header=N:V  that status, with a short body (none for 204 and
//                               304), or B as Content-Type T (default text/plain), and a header N
//                               for each header= (repeatable); this, /delay and /flaky answer
//                               POST, PUT, PATCH and DELETE as GET
//   /delay/<ms>                 200 after <ms> milliseconds
//   /retry-after/<n>?status=S   status S (default 503) with "Retry-After: <n>"; with &date=1 the
//                               header is the HTTP-date n seconds from now
//   /flaky/<key>?fail=N&status=S&after=A  the first N requests for <key> get S (default 503, with
//                               "Retry-After: A" when given; &type=T its Content-Type), then 200
//                               (after MS ms with &then_delay=MS); with &id=1 each answer has
//                               "X-Request-Id: <key>-<i>", i counting the key's requests from 0;
//                               with &keys=1 the 200's body is "keys:" and the Idempotency-Key
//                               header of each of the key's requests, after a space each
//   /ratelimit/<key>?limit=N&window=S&status=C&style=ietf  an API with a quota of N requests (default
//                               3) per S seconds (default 1) per key, C (default 403) beyond it;
//                               X-RateLimit-Limit, -Remaining and -Reset (Unix seconds) on every
//                               answer, or RateLimit-* (reset in seconds from now) with style=ietf
//   /busy/<max>/<any>?delay=D   a server that takes <max> requests at a time (all /busy ones):
//                               200 after D ms (default 20), and 503 at once to requests beyond
//   /truncated                  announces 100000 bytes, sends 1000, closes the connection
//   /huge/<bytes>?pace=MS       a body of <bytes> bytes, in blocks of 64 KiB (MS ms apart when given)
//   /bytes/<n>?seed=S&type=T    <n> bytes of every value 0-255 (random_bytes(n, S), S default 1),
//                               sent as Content-Type T (default application/octet-stream)
//   /ranged/<key>/<n>?seed=S&cut=C&cuts=K&changed=S2&validator=V  random_bytes(n, S) with
//                               Accept-Ranges: bytes, a strong ETag (V etag, the default), a
//                               Last-Modified (V date) or neither (V none; a Range is then ignored);
//                               a Range gets 206, unless an If-Range names another version (200,
//                               the whole file, chunked). The first K (default 1) requests for
//                               <key> close the connection after C bytes of body; later ones
//                               serve seed S2 when given (the file changed meanwhile), and &then=M
//                               bytes instead of n when given; with
//                               &misrange=1 a Range gets 206 with the whole file (a broken server);
//                               with &chunked=1 a request without Range gets the file chunked;
//                               with &pace=MS its 64 KiB blocks go MS ms apart
//   /gzip                       a gzip-encoded text body (Content-Encoding: gzip)
//   /gzip-bomb                  64 KiB of gzip that decodes to 64 MiB
//   /bad-gzip                   Content-Encoding: gzip on a body that is not gzip
//   /redirect/<n>               a chain of n redirects ending at 200 "redirected"
//   /redirect-loop              redirects to itself forever
//   /redirect-to?url=<u>        a redirect to <u> (file:///etc/passwd, another host, ...); &status=S
//                               picks the redirect status (default 302 Found; as a POST 303 See Other)
//   /headers?<name>=<value>...  200 with each query parameter as a response header (repeat a name
//                               for several fields of that name); GET or POST
//   /echo (GET, POST, ...)      the request as JSON: method, path, target (as sent), body, headers
//   /paged/<n>?page=N&per=P     a REST API over n items paged by its Link header (GitHub's): a JSON
//                               array of {"id": i}, P a page (default 10); rel="next" relative,
//                               first, prev and last absolute; &offset=O: the P items from O instead
//   /github/repos/<o>/<r>/issues?per_page=P&page=N  GitHub's REST API for a repository's 230
//                               issues: its JSON, the next page in the Link header, quota headers
//   /cursor/<n>?per=P (POST)    a GraphQL-style API over n items paged by the cursor at "after" in
//                               the body (null first): Relay's edges and pageInfo {hasNextPage,
//                               endCursor}, P items a page (default 10); 400 without "after"
//   /oauth-token?life=S&fail=N&from=F&status=C&delay=D (POST)  an OAuth 2.0 token endpoint (client credentials
//                               grant) for client "sluice", secret "s3cret", and "svc:1", "p@ss w+rd/="
//                               (HTTP Basic, form-encoded as RFC 6749 2.3.1 asks, or in the form):
//                               {"access_token":"tok-<n>","token_type":"bearer","expires_in":S} (S default 3600; none:
//                               no expires_in; &type=T another token_type); N requests after the first F (default 0)
//                               get C (default 503); 401 invalid_client to other credentials. Also the
//                               refresh token, JWT bearer and token exchange (RFC 8693, subject
//                               tokens "ext-...") grants, client assertions, and clients
//                               "mtls" and "mtls-other" proved by their TLS certificate (RFC 8705), whose
//                               tokens are bound to it (fixture_server.cpp says how)
//   /basic-auth/<u>/<p>         200 {"user": u} to HTTP Basic credentials of user u, password p;
//                               401 with a Basic challenge to any other request
//   /digest-auth/<u>/<p>        the same with HTTP Digest (RFC 7616, MD5, qop auth): 401 with a
//                               challenge, then 200 to the request that answers it
//   /ntlm-auth/<u>/<p>?domain=D the same with NTLM (NTLMv2 over a keep-alive connection, GET and
//                               POST): 401 with a challenge to a negotiate message, then 200
//                               {"user","domain","via","body"} to the answer and to the connection's later
//                               requests
//   /aws/<path> (GET, POST)     an API behind AWS Signature Version 4 (key AKIDEXAMPLE, its secret
//                               and session token in fixture_server.cpp): 200 {"path","query","token"}
//                               to a request signed as AWS checks it, else 403 with S3's error code
//   /aws-container-credentials?first=S&expires=N&auth=T&status=C
//                               a container's credentials endpoint (ECS, EKS Pod Identity): 200
//                               {"AccessKeyId","SecretAccessKey","Token","Expiration"} with /aws's keys
//                               and session token, for an hour; the first answer's secret S, for N s;
//                               401 unless "Authorization: T"; C: that status always
//   /oauth-api/<path>?revoke=R  200 {"path","token","scope"} to "Authorization: Bearer <token>" of a
//                               token /oauth-token issued that has not expired (a certificate-bound one
//                               with its certificate, and "cnf": its SHA-256 then); 401 to any other;
//                               with R=1 every token issued so far is revoked first;
//                               /oauth-api/orders?page=N: an API's 95 orders, 20 a page, as
//                               {"orders": [...], "next": the next page's URL or null}
//   http://host/path            a request in absolute form, as a client sends it to its HTTP proxy:
//                               200 "proxied http://host/path" (counted under "proxy"); with
//                               proxy_ntlm=U:P in its query only to a client that proves U, P to the
//                               proxy with NTLM (407 challenges), "... (ntlm: <domain>, <via>)"; with
//                               proxy_digest=U:P with Digest, "... (digest)"
//   /__stats                    counters as JSON; POST /__reset clears them
// A connection reset has its own raw TCP port (reset_url()): it accepts and resets at once.
//
// Text responses are compressed (br, else gzip) when the client accepts it, as cpp-httplib does;
// files over 256 KiB are sent as they are (brotli at its best quality takes seconds per megabyte).
// With `tls` the same endpoints are served over HTTPS (HTTP/1.1), with a self-signed certificate.
//
// Counters: requests seen, current and maximum concurrent requests, and the client connections they
// came on, per first path segment ("/delay"; "proxy" for absolute-form targets), per Host header,
// per User-Agent header, and per Proxy-Authorization and Range header (when a request has one). Not counted: /__stats
// and /__reset.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace sluice::fixture {

struct Counter {
  std::uint64_t requests = 0;
  int current = 0;
  int max_concurrent = 0;
  std::uint64_t connections = 0;  // distinct client connections (address and port) that sent them
};

// A fresh key and a self-signed certificate for 127.0.0.1 (its own authority: a client trusts it by
// loading the certificate as its CA file), written as PEM files `dir`/cert.pem and `dir`/key.pem —
// for servers other than the fixture (nginx, which speaks HTTP/2).
struct CertificateFiles {
  std::string cert;
  std::string key;
};
CertificateFiles write_self_signed(const std::string& dir);

// The body /bytes/<n>?seed=<seed> sends: `n` bytes of a fixed pseudo-random sequence (NULs, bytes
// that are not UTF-8, line breaks), the same for the same seed.
std::string random_bytes(std::size_t n, std::uint64_t seed);

class FixtureServer {
 public:
  // Starts listening on an ephemeral 127.0.0.1 port; `root` may be empty (no files). With `tls`, it
  // serves HTTPS with a fresh self-signed certificate for 127.0.0.1, written to ca_file(). It closes a
  // keep-alive connection idle for `keep_alive_seconds` (each open connection holds one of `threads`,
  // started as connections need them);
  // a test that counts connections wants longer than a loaded machine can leave one idle. `address`:
  // another loopback address (127.0.0.0/8) to listen on, such as the one the machine's name has.
  // `client_certs` (with `tls`): a TLS handshake without the client certificate in
  // client_cert_file() (its key in client_key_file()) fails, and /whoami answers the client's CN.
  explicit FixtureServer(std::string root = "", int port = 0, int threads = 256, bool tls = false,
                         int keep_alive_seconds = 1, std::string address = "127.0.0.1", bool client_certs = false);
  ~FixtureServer();
  FixtureServer(const FixtureServer&) = delete;
  FixtureServer& operator=(const FixtureServer&) = delete;

  int port() const;
  std::string url(const std::string& path = "/") const;  // http(s)://<address>:<port><path>
  const std::string& ca_file() const;                    // the certificate as a PEM file; "" without TLS
  const std::string& client_cert_file() const;           // with client_certs, the certificate it takes, PEM
  const std::string& client_key_file() const;            // and its private key, PEM
  std::string reset_url() const;                         // http://127.0.0.1:<reset port>/

  // Keys: "*" (all), "/delay" (first path segment), "proxy" (absolute-form targets), "host:<Host header>",
  // "agent:<User-Agent header>", "proxy-auth:<Proxy-Authorization header>", "range:<Range header>".
  std::map<std::string, Counter> counters() const;
  Counter counter(const std::string& key) const;
  // When each request counted under `key` arrived (steady clock), in arrival order; the first 100,000.
  std::vector<std::chrono::steady_clock::time_point> arrivals(const std::string& key) const;
  void reset_counters();

 private:
  void stop();  // stops listening and joins the threads

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::fixture
