// HttpLoop's `download`: where a job's file goes, a file an earlier run left taken up again, and a
// finished file put in its place. The bytes themselves are written by the transfer's write callback
// (http_loop.cpp), on the I/O thread like everything here.
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>

#include "../text.hpp"
#include "transfer.hpp"

namespace sluice::fetch {

std::string_view HttpLoop::asked_url(const Job& job, const Record& record) const {
  const Value* url = record.get(opt_.url_field);
  return url && url->as_string() ? nodes::url_stripped(*url->as_string()) : std::string_view(job.url);
}

std::string HttpLoop::download_name(const Job& job, std::string_view content_type) const {
  if (!job.file.empty()) return job.file;
  return nodes::hashed_name(asked_url(job, job.record), content_type);
}

std::string HttpLoop::download_folder(const Job& job) const {
  const auto slash = job.file.rfind('/');
  const std::string& dir = opt_.download->dir;
  return slash == std::string::npos ? dir : dir + "/" + job.file.substr(0, slash);
}

// download: a file of the job's URL that an earlier run left unfinished in its folder becomes the
// job's partial download: its first attempt asks for the rest. With sha256 its bytes are hashed
// first, a piece per loop turn (hash_adopted()).
bool HttpLoop::adopt_file(std::unique_ptr<Job>& job) {
  auto found = files_->adopt(download_folder(*job), job->resume_key, job->asked_url, opt_.max_body);
  if (!found) return false;
  auto p = std::make_unique<PartialDownload>();
  p->fd = found->fd;
  p->temp = std::move(found->temp);
  p->size = found->size;
  p->validator = std::move(found->version);
  p->resumable = p->earlier_run = true;
  if (opt_.download->sha256) {
    p->digest = EVP_MD_CTX_new();
    if (!p->digest || !EVP_DigestInit_ex(p->digest, EVP_sha256(), nullptr)) throw std::bad_alloc();
  } else {
    p->hashed = p->size;
  }
  const bool hash = p->hashed < p->size;
  job->partial = std::move(p);
  if (hash) hashing_.push_back(std::move(job));
  return hash;
}

// download with sha256: hashes the next piece of the first adopted file whose bytes are not all
// hashed yet; when they are, its job goes to its host's queue. A read error gives the file up (the
// job fetches it whole).
void HttpLoop::hash_adopted() {
  constexpr std::size_t kPiece = 1 << 20;  // about a millisecond of the I/O thread per loop turn
  auto& job = hashing_.front();
  PartialDownload& p = *job->partial;
  if (!hash_buffer_) hash_buffer_ = std::make_unique_for_overwrite<unsigned char[]>(kPiece);
  const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(kPiece, p.size - p.hashed));
  const ssize_t n = ::pread(p.fd, hash_buffer_.get(), want, static_cast<off_t>(p.hashed));
  if (n <= 0) {
    job->partial.reset();
  } else {
    EVP_DigestUpdate(p.digest, hash_buffer_.get(), static_cast<std::size_t>(n));
    p.hashed += static_cast<std::uint64_t>(n);
    if (p.hashed < p.size) return;
  }
  auto done = std::move(job);
  hashing_.pop_front();
  enqueue(std::move(done), false);
}

std::string HttpLoop::place_file(Transfer& t, Job& job, std::string& error, Reason& reason) {
  char* type = nullptr;
  char* effective = nullptr;
  curl_easy_getinfo(t.easy, CURLINFO_CONTENT_TYPE, &type);
  curl_easy_getinfo(t.easy, CURLINFO_EFFECTIVE_URL, &effective);
  std::string rel;
  if (opt_.download->served) {  // the path with the name the server gave (the record keeps it)
    const auto disposition = response_header(t.easy, "Content-Disposition");
    job.record.set("server_filename",
                   Value(nodes::served_name(disposition.value_or(""), effective ? effective : job.url)));
    rel = nodes::checked_relative(opt_.download->path->render(job.record), error);
    if (rel.empty()) {
      reason = Reason::invalid;
      t.discard_file();
      return "";
    }
  } else {
    rel = download_name(job, type ? type : "");
  }
  const std::string path = opt_.download->dir + "/" + rel;
  if (!run_files_.claim(path, job.url, effective ? effective : "")) {
    error = nodes::RunFiles::conflict(path);
    reason = Reason::invalid;
    t.discard_file();
    return "";
  }
  if (t.fd < 0) {  // no body at all: an empty file
    std::string name = rel.substr(rel.rfind('/') + 1);
    t.fd = files_->open(t.folder, name, t.temp, error);
    if (t.fd < 0) return "";
  }
  const int fd = std::exchange(t.fd, -1);
  // A resumable file stays locked until it is renamed: another run must not take it up meanwhile.
  struct Lock {
    int fd;
    ~Lock() {
      if (fd >= 0) ::close(fd);
    }
  } lock{t.resumable ? ::dup(fd) : -1};
  if (::close(fd) != 0) {
    error = fmt::format("cannot write: {}: '{}'", std::strerror(errno), path);
    t.discard_file();
    return "";
  }
  // keep never replaces a file that is there (one named by its Content-Type, or made meanwhile).
  if (::renameat2(AT_FDCWD, t.temp.c_str(), AT_FDCWD, path.c_str(), opt_.download->keep ? RENAME_NOREPLACE : 0) != 0) {
    const int e = errno;
    const std::string temp = t.temp;
    t.discard_file();
    struct stat st {};
    if (e == EEXIST && ::stat(path.c_str(), &st) == 0) {
      t.written = static_cast<std::uint64_t>(st.st_size);
      // The record goes on with the file there, not the bytes fetched: their hash is not its.
      EVP_MD_CTX_free(t.digest);
      t.digest = nullptr;
      return path;
    }
    error = fmt::format("cannot write: {}: renaming '{}' to '{}'", std::strerror(e), temp, path);
    return "";
  }
  if (t.resumable) ::unlink((t.temp + ".meta").c_str());
  t.resumable = false;
  t.temp.clear();
  return path;
}

}  // namespace sluice::fetch
