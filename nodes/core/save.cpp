// save: writes a field of each record (a fetched body: an image, a PDF, a page) to a file of its own
// under `dir`, on the node's own thread, and passes the record on with the file's path and size.
// Each file is written under a temporary name and renamed into place, so a file under its final
// name is always whole: after a full disk, a kill or a power cut there is no half image.
#include <fcntl.h>
#include <fmt/format.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "../builtin.hpp"
#include "../text.hpp"
#include "file_names.hpp"
#include "sluice/template.hpp"

namespace sluice::nodes {
namespace {

enum class Exists { replace, keep, fail };

struct SaveOptions {
  std::string dir;
  std::optional<FieldTemplate> path;  // none: the URL's hash and an extension
  std::string field;
  std::string url_field;
  std::string path_field;
  std::string size_field;
  bool keep_field = false;
  Exists exists = Exists::replace;
  bool sync = false;
  std::uint64_t min_free = 0;  // bytes a write must leave free on the file system; 0: no check
};

class Save final : public AsyncNode {
 public:
  explicit Save(SaveOptions options) : o_(std::move(options)) {}

  void start(AsyncOutput& out) override {
    out_ = &out;
    std::string error;
    if (!files_.make_dirs(o_.dir, error)) throw NodeError(error);
    thread_ = std::thread([this] { run(); });
  }

  void submit(Record&& record) override {
    {
      std::lock_guard lock(mutex_);
      queue_.push_back(std::move(record));
    }
    cv_.notify_one();
  }

  // Records waiting to be saved fail from now on (the one being written is finished). A graceful
  // stop needs nothing: records that reach this node are fetched already, and are saved.
  void cancel() override {
    std::lock_guard lock(mutex_);
    cancelled_ = true;
  }

  void stop() override {
    {
      std::lock_guard lock(mutex_);
      quit_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void run() {
    pthread_setname_np(pthread_self(), "save");
    std::unique_lock lock(mutex_);
    while (true) {
      cv_.wait(lock, [&] { return quit_ || !queue_.empty(); });
      if (queue_.empty()) return;  // quit_, and nothing left
      std::deque<Record> batch = std::move(queue_);
      queue_.clear();
      lock.unlock();
      for (Record& r : batch) {
        if (cancelled_flag()) {
          out_->fail(std::move(r), "cancelled before it was saved");
        } else {
          save(std::move(r));
        }
        if (out_->urgent()) out_->flush();
      }
      batch.clear();
      out_->flush();
      lock.lock();
    }
  }

  bool cancelled_flag() {
    std::lock_guard lock(mutex_);
    return cancelled_;
  }

  void save(Record&& record) {
    const Value* data = record.get(o_.field);
    if (!data || data->is_null()) {
      out_->fail(std::move(record), fmt::format("the record has no field '{}' to save", o_.field));
      return;
    }
    std::string error;
    std::string rel;
    if (o_.path) {
      rel = checked_relative(o_.path->render(record), error);
    } else {
      const Value* url = record.get(o_.url_field);
      const Value* type = record.get("content_type");
      if (!url || url->is_null()) {
        error = fmt::format("the record has no field '{}' to name its file by (or give the node a path)", o_.url_field);
      } else {
        const std::string u = url->to_text();
        rel = hashed_name(u, type && !type->is_null() ? type->to_text() : "");
      }
    }
    if (rel.empty()) {
      out_->fail(std::move(record), error);
      return;
    }
    const std::string path = o_.dir + "/" + rel;
    const Value* url = record.get(o_.url_field);
    const Value* final_url = record.get("final_url");
    if (!run_files_.claim(path, url && !url->is_null() ? url->to_text() : "",
                          final_url && !final_url->is_null() ? final_url->to_text() : "")) {
      out_->fail(std::move(record), RunFiles::conflict(path));
      return;
    }
    std::optional<std::uint64_t> size;
    if (const Bytes* b = data->as_bytes()) {
      size = write_file(path, b->view(), error);
    } else if (const std::string* s = data->as_string()) {
      size = write_file(path, *s, error);
    } else {
      size = write_file(path, data->to_text(), error);
    }
    if (!size) {
      out_->fail(std::move(record), error);
      return;
    }
    if (!o_.keep_field) record.erase(o_.field);
    record.set(o_.path_field, Value(path));
    record.set(o_.size_field, Value(static_cast<std::int64_t>(*size)));
    out_->complete(std::move(record));
  }

  // Writes `data` to `path` through a temporary file in its folder; returns the size of the file now
  // under `path` (with `exists: keep`, perhaps an older one), or nullopt and sets `error`.
  std::optional<std::uint64_t> write_file(const std::string& path, std::string_view data, std::string& error) {
    const std::size_t slash = path.rfind('/');
    const std::string folder = path.substr(0, slash);
    if (!files_.make_dirs(folder, error)) return std::nullopt;
    struct stat st {};
    if (o_.exists != Exists::replace && ::lstat(path.c_str(), &st) == 0) {
      if (o_.exists == Exists::keep && S_ISREG(st.st_mode)) return static_cast<std::uint64_t>(st.st_size);
      error = fmt::format("file exists: '{}'", path);
      return std::nullopt;
    }
    if (o_.min_free > 0) {
      struct statvfs fs {};
      if (::statvfs(folder.c_str(), &fs) == 0) {
        const std::uint64_t available = static_cast<std::uint64_t>(fs.f_bavail) * fs.f_frsize;
        if (available < data.size() || available - data.size() < o_.min_free) {
          error = fmt::format("disk almost full: '{}' ({} bytes) would leave less than min_free ({} bytes) of {} free",
                              path, data.size(), o_.min_free, available);
          return std::nullopt;
        }
      }
    }
    std::string temp;
    const int fd = files_.open(folder, std::string_view(path).substr(slash + 1), temp, error);
    if (fd < 0) return std::nullopt;
    if (const int e = PartFiles::write_all(fd, data.data(), data.size()); e != 0) {
      error = fmt::format("cannot write: {}: '{}'", std::strerror(e), path);
      ::close(fd);
      ::unlink(temp.c_str());
      return std::nullopt;
    }
    if ((o_.sync && ::fsync(fd) != 0) || ::close(fd) != 0) {
      error = fmt::format("cannot write: {}: '{}'", std::strerror(errno), path);
      ::unlink(temp.c_str());
      return std::nullopt;
    }
    // keep and fail never replace a file that appeared meanwhile (another run saving the same URL).
    const unsigned flags = o_.exists == Exists::replace ? 0 : RENAME_NOREPLACE;
    if (::renameat2(AT_FDCWD, temp.c_str(), AT_FDCWD, path.c_str(), flags) != 0) {
      const int e = errno;
      ::unlink(temp.c_str());
      if (e == EEXIST && o_.exists == Exists::keep && ::stat(path.c_str(), &st) == 0) {
        return static_cast<std::uint64_t>(st.st_size);
      }
      error = e == EEXIST ? fmt::format("file exists: '{}'", path)
                          : fmt::format("cannot write: {}: renaming '{}' to '{}'", std::strerror(e), temp, path);
      return std::nullopt;
    }
    if (o_.sync) sync_dir(folder);
    return data.size();
  }

  static void sync_dir(const std::string& folder) {
    const int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    ::fsync(fd);
    ::close(fd);
  }

  SaveOptions o_;
  AsyncOutput* out_ = nullptr;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Record> queue_;
  bool cancelled_ = false, quit_ = false;
  // save thread only:
  PartFiles files_;
  RunFiles run_files_;
};

}  // namespace

NodeType save_type() {
  NodeType t;
  t.name = "save";
  t.kind = NodeKind::async;
  t.summary =
      "writes a field of each record (a fetched image, PDF or page) to a file of its own, and passes the "
      "record on with the file's path";
  t.ports = transform_ports();
  t.schema = Schema({
      FieldSpec::string("dir", "the folder the files go to (created when missing)").make_required(),
      FieldSpec::string("path",
                        "the file's path under dir, a template: \"{sku:file}.jpg\", \"{category:file}/{url:hash}.pdf\" "
                        "({field:file} makes scraped text safe as a name; '..' and absolute paths fail the record); "
                        "default: the URL's hash and an extension from the URL or the Content-Type")
          .validated_by(check_path_template),
      FieldSpec::string("field", "the field written to the file").with_default("body"),
      FieldSpec::string("url_field", "the URL that names the file when there is no path").with_default("url"),
      FieldSpec::string("path_field", "the field that receives the file's path (dir included)").with_default("file"),
      FieldSpec::string("size_field", "the field that receives the file's size in bytes").with_default("file_size"),
      FieldSpec::boolean("keep_field", "keep the saved field in the record (default: removed, to free its memory)")
          .with_default("false"),
      FieldSpec::enumeration("exists", {"replace", "keep", "fail"},
                             "when the file exists: replace it, keep it (the record goes on with the file there), "
                             "or fail the record; one this run saved for another URL always fails the record")
          .with_default("replace"),
      FieldSpec::size("min_free",
                      "free space a file may not take: a write that would leave less on the file system fails its "
                      "record (with max_errors, the run stops before the disk is full); 0: no check")
          .with_default("0"),
      FieldSpec::boolean("sync",
                         "fsync each file and its folder before the record goes on (survives a power cut; slow)")
          .with_default("false"),
  });
  t.factory = [](const NodeContext& ctx) -> std::unique_ptr<Node> {
    const Config& c = ctx.config;
    SaveOptions o;
    std::string dir = c.string("dir");
    while (dir.size() > 1 && dir.ends_with('/')) dir.pop_back();
    o.dir = dir.empty() ? std::string(".") : std::move(dir);
    if (c.has("path")) o.path = FieldTemplate::compile(c.string("path"));
    o.field = c.string("field");
    o.url_field = c.string("url_field");
    o.path_field = c.string("path_field");
    o.size_field = c.string("size_field");
    o.keep_field = c.boolean("keep_field");
    const std::string exists = c.string("exists");
    o.exists = exists == "keep" ? Exists::keep : exists == "fail" ? Exists::fail : Exists::replace;
    o.sync = c.boolean("sync");
    o.min_free = c.size("min_free");
    return std::make_unique<Save>(std::move(o));
  };
  t.example = R"(- id: images
  type: save
  dir: images
  path: "{sku:file}.jpg"
  exists: keep)";
  return t;
}

}  // namespace sluice::nodes
