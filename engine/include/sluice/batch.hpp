// Batches, the unit that travels on graph edges, and permits, which bound work in flight.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "sluice/value.hpp"

namespace sluice {

// Something that hands out units of capacity and takes them back when a Permit dies.
// on_release() may be called from any thread, including non-TBB threads, and must not throw.
class PermitSource {
 public:
  virtual ~PermitSource() = default;
  virtual void on_release() noexcept = 0;
};

// One unit of capacity. Returned to its source exactly once, when the last reference dies:
// share it (PermitRef) between a record and everything derived from it, and the unit is held until
// all of them have left the graph. Leaks and double releases are impossible by construction.
class Permit {
 public:
  explicit Permit(PermitSource& source) : source_(&source) {}
  Permit(const Permit&) = delete;
  Permit& operator=(const Permit&) = delete;
  ~Permit() { source_->on_release(); }

 private:
  PermitSource* source_;
};
using PermitRef = std::shared_ptr<const Permit>;

// A counting gate for a thread that produces work (a source thread): acquire() blocks that thread
// while `capacity` permits are out, and returns null once the gate is closed. Never call acquire()
// on a TBB worker. The gate must outlive every permit it issued.
class Gate final : public PermitSource {
 public:
  explicit Gate(std::int64_t capacity) : capacity_(capacity) {}

  PermitRef acquire();
  // Wakes blocked acquirers; later acquire() calls return null. Idempotent.
  void close();
  void on_release() noexcept override;

  std::int64_t admitted() const;
  std::int64_t released() const;

 private:
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::int64_t capacity_;
  std::int64_t admitted_ = 0;
  std::int64_t released_ = 0;
  bool closed_ = false;
};

// A group of records moving together along an edge. Every message on an edge is owned by its
// receiver alone (the engine copies batches for fan-out), so a node may modify it in place.
struct Batch {
  std::vector<Record> records;
  // Permits held by this batch; derived batches share them, so capacity returns only when every
  // batch derived from a source batch is gone.
  std::vector<PermitRef> tickets;

  // An empty batch that shares this batch's tickets.
  std::shared_ptr<Batch> derive() const {
    auto b = std::make_shared<Batch>();
    b->tickets = tickets;
    return b;
  }
};
using Message = std::shared_ptr<Batch>;

}  // namespace sluice
