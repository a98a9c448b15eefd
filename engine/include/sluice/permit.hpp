// Permits bound work in flight: a unit of capacity that returns to its source when the last
// holder lets go.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>

namespace sluice {

// Something that hands out units of capacity and takes them back when a Permit dies.
// on_release() may be called from any thread, including non-TBB threads, and must not throw.
// `tag` is the value the Permit was made with (which batch, which URL), for sources that care.
class PermitSource {
 public:
  virtual ~PermitSource() = default;
  virtual void on_release(std::uint64_t tag) noexcept = 0;
  // The same, for a permit marked unfinished (Permit::mark_unfinished()): part of the work it
  // covered was dropped undone. Capacity comes back all the same; a source that records progress
  // records none. Default: on_release().
  virtual void on_release_unfinished(std::uint64_t tag) noexcept { on_release(tag); }
};

// One unit of capacity. Returned to its source exactly once, when the last reference dies:
// share it (PermitRef) between a record and everything derived from it, and the unit is held until
// all of them have left the graph. Leaks and double releases are impossible by construction.
class Permit {
 public:
  explicit Permit(PermitSource& source, std::uint64_t tag = 0) : source_(&source), tag_(tag) {}
  Permit(const Permit&) = delete;
  Permit& operator=(const Permit&) = delete;
  ~Permit() {
    if (unfinished_.load())
      source_->on_release_unfinished(tag_);
    else
      source_->on_release(tag_);
  }

  const PermitSource* source() const { return source_; }
  std::uint64_t tag() const { return tag_; }

  // Any holder, any thread: a record this permit covers leaves the graph without being processed
  // (a graceful stop dropped it before its fetch started), so the work the permit stands for is
  // not all done, whatever happens to the other records that share it. Sticky.
  void mark_unfinished() const noexcept { unfinished_.store(true); }
  bool unfinished() const noexcept { return unfinished_.load(); }

 private:
  PermitSource* source_;
  std::uint64_t tag_;
  mutable std::atomic<bool> unfinished_{false};
};
using PermitRef = std::shared_ptr<const Permit>;

// Marks each of `permits` unfinished (Permit::mark_unfinished(); null ones skipped): the records
// they cover were dropped, or lost by a sink, undone.
inline void mark_unfinished(std::span<const PermitRef> permits) {
  for (const auto& p : permits) {
    if (p) p->mark_unfinished();
  }
}

// A counting gate for a thread that produces work (a source thread): acquire() blocks that thread
// while `capacity` permits are out, and returns null once the gate is closed. Never call acquire()
// on a TBB worker. The gate must outlive every permit it issued.
class Gate final : public PermitSource {
 public:
  explicit Gate(std::int64_t capacity) : capacity_(capacity) {}

  PermitRef acquire();
  // Wakes blocked acquirers; later acquire() calls return null. Idempotent.
  void close();
  void on_release(std::uint64_t tag) noexcept override;

  std::int64_t admitted() const;
  std::int64_t released() const;
  // All `capacity` permits are out: the producing thread waits (or will) until one comes back.
  bool saturated() const;

 private:
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::int64_t capacity_;
  std::int64_t admitted_ = 0;
  std::int64_t released_ = 0;
  bool closed_ = false;
};

}  // namespace sluice
