// What fetch's I/O thread keeps per request (HttpLoop::Job) and per transfer (HttpLoop::Transfer),
// and the helpers its source files share in judging a transfer's end. Private to nodes/fetch: only
// HttpLoop's own source files include it, and only the I/O thread touches these objects.
#pragma once

#include <curl/curl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../core/file_names.hpp"
#include "http_loop.hpp"

namespace sluice::fetch {

// download: what an attempt cut off (a reset, a timeout, an error page after it) had written, or
// what an earlier run left (a resumable file, see PartFiles), kept for the next attempt to ask only
// for the rest (Range, with If-Range: the version the bytes came from). The file is removed when
// the job ends without resuming it, except a resumable one whose job did not end (keep_for_later()).
struct PartialDownload {
  int fd = -1;
  std::string temp;
  std::uint64_t size = 0;
  std::string validator;         // a strong ETag or a Last-Modified date
  bool resumable = false;        // temp is a resumable file (PartFiles::open_resumable), with its meta
  bool earlier_run = false;      // left by an earlier run (PartFiles::adopt)
  EVP_MD_CTX* digest = nullptr;  // sha256: the hash of the bytes so far
  std::uint64_t hashed = 0;      // sha256: of the first `hashed` bytes (an adopted file is read back first)
  PartialDownload() = default;
  PartialDownload(const PartialDownload&) = delete;
  PartialDownload& operator=(const PartialDownload&) = delete;
  // The job ends unfinished (the run was cancelled or stops): a resumable file stays for a later run.
  void keep_for_later() {
    if (resumable && fd >= 0) {
      ::close(std::exchange(fd, -1));
      temp.clear();
    }
  }
  ~PartialDownload() {
    if (fd >= 0) ::close(fd);
    if (!temp.empty()) nodes::PartFiles::remove_temp(temp, resumable);
    EVP_MD_CTX_free(digest);
  }
};

struct HttpLoop::Job {
  Record record;
  std::string url;   // the current hop, as sent (see request_url(); libcurl normalizes it again)
  std::string host;  // scheme://host:port of the current hop
  std::string path;  // its normalized path and query, for robots.txt rules (only when obeyed)
  std::string method;
  std::optional<std::string> body;
  std::vector<std::string> headers;  // "Name: value"
  int attempts = 0;
  int redirects = 0;
  bool crossed = false;  // redirected to another origin: the node's credentials stay behind
  int proxy = -1;        // the index in proxies_ of its latest attempt's proxy
  std::string file;      // download: the path under dir that `path` rendered ("": named when it ends)
  std::unique_ptr<PartialDownload> partial;  // download: an earlier attempt's bytes, to resume
  // download of a GET: the URL the record asked for, and 16 hex digits of its hash, which name its
  // resumable file (PartFiles::open_resumable); empty otherwise.
  std::string asked_url, resume_key;
  // cache: the request's key (cache_key()) and URL; empty when the job is not looked up or stored.
  std::string cache_key, cache_url;
  // cache: the response kept for it, too old to use as it is; asked for with its validators
  // (`revalidating` on the attempt that sent them).
  std::unique_ptr<CachedResponse> stale;
  bool revalidating = false;
  // Since when it has found no descriptor with no other transfer of the node in flight (asks_again()).
  Clock::time_point lone_since{};
  int lookups_in_shortage = 0;  // failed lookups of its name repeated for a shortage of descriptors
  std::string setup_error;      // a problem found at submit (no url field, a refused or invalid URL)
  Reason setup_reason = Reason::invalid;
  std::uint64_t token = 0;     // oauth2: the generation of the token its latest attempt sent (0: none)
  bool token_renewed = false;  // oauth2: a 401 to its token sent it again with the next token (once)
};

// One easy handle with the node's options, and the state of the transfer it runs. Pooled: a
// finished transfer's handle keeps its options (and curl its connection cache), so the next one
// sets only its URL and request headers.
struct HttpLoop::Transfer {
  std::unique_ptr<Job> job;  // null for a robots.txt fetch and oauth2's token request
  std::string robots_host;   // the host whose robots.txt this is
  bool token = false;        // oauth2's request for an access token
  bool endpoint_keys = false;  // aws_sigv4's request for keys from the container's endpoint
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  BodyPool* bodies = nullptr;
  std::atomic<std::uint64_t>* received = nullptr;  // the node's count of body bytes (NodeContext::received)
  std::string body;
  std::uint64_t max_body = 0;
  bool sized = false;  // the body was reserved from Content-Length
  bool too_large = false;
  // content_types of a page's transfer (null: any, and for robots.txt), with ok_status: a response
  // of another media type is cut off at its first bytes (wrong_type).
  const MediaTypes* types = nullptr;
  const StatusSet* ok_status = nullptr;
  bool wrong_type = false;
  std::string refused_ip;  // private_addresses: refuse stopped it before its request, at this address
  bool probe = false;
  Clock::time_point started{};  // set with `adaptive` only
  // read_timeout: the bytes sent and received (headers included) when end_stalled() last saw them
  // change, and when that was (from the transfer's start).
  std::int64_t progress = 0;
  Clock::time_point progress_at{};
  int proxy = -1;               // the index in proxies_ of the proxy it goes through
  // download: a successful body goes to `fd`, the temporary file `temp` in `folder`, instead of
  // `body`; the file is removed unless place_file() renamed it (discard_file()).
  nodes::PartFiles* files = nullptr;
  std::string folder;
  int fd = -1;
  std::string temp;
  std::uint64_t written = 0;
  // A resumed download: the bytes the file had when this transfer asked for the rest (0: from the
  // start, also after a server sent the whole file instead), and the version they came from.
  std::uint64_t resumed_from = 0;
  std::string validator;         // the version of the file's bytes (GET only): a strong ETag or Last-Modified; "": none
  bool resumable = false;        // temp is a resumable file with its meta (PartFiles::open_resumable)
  bool earlier_run = false;      // resumed_from bytes came from an earlier run
  bool bad_range = false;        // a 206 that did not start where the file ends: cut off, the file dropped
  EVP_MD_CTX* digest = nullptr;  // download with sha256: the hash of the bytes written
  std::string write_error;       // a file that could not be written: the transfer was aborted for it
  int socket_errno = 0;          // why socket() failed for it (on_open_socket), 0 if it did not
  char error[CURL_ERROR_SIZE] = {};

  void discard_file() {
    if (fd >= 0) ::close(fd);
    fd = -1;
    if (!temp.empty()) nodes::PartFiles::remove_temp(temp, resumable);
    temp.clear();
    resumable = false;
  }
  // The transfer ends unfinished (the run was cancelled): a resumable file with bytes in it stays for
  // a later run to continue.
  void keep_for_later() {
    if (!resumable || fd < 0 || written == 0 || validator.empty()) return;
    ::close(std::exchange(fd, -1));
    temp.clear();
    resumable = false;
  }
  ~Transfer() {
    discard_file();
    EVP_MD_CTX_free(digest);
    if (easy) curl_easy_cleanup(easy);
    curl_slist_free_all(headers);
  }
};

// A response header of the transfer's last response (not of a 1xx, not a trailer), read from the
// headers libcurl stores anyway: no header callback runs per line. Several fields of one name are
// joined with ", " (RFC 9110, 5.3). nullopt when the response had none.
std::optional<std::string> response_header(CURL* easy, const char* name);
// "1 attempt", "3 attempts".
std::string attempts_text(int n);
// The reason a transfer that ended with `code` failed (too_large: its body passed max_body).
Reason classify(CURLcode code, bool too_large);
// The transfer could not open a socket, or its name could not be looked up for want of descriptors
// (lookup_errno()): this process or the system has none left.
bool out_of_sockets(const HttpLoop::Transfer& t, CURLcode code);
// Why a transfer found no descriptor for its socket (or its lookup).
std::string out_of_descriptors(int socket_errno);
// The error of a request refused by private_addresses: refuse, `url` being at `ip`.
std::string private_message(std::string_view url, std::string_view ip);

}  // namespace sluice::fetch
