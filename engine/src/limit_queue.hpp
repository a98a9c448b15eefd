// LimitQueue: the reservable predecessor of a `limit` node's limiter_node.
//
// oneTBB's queue_node would do, but it spawns a forwarding task on every try_consume() — once per
// admitted record, even when the limiter pulls and the queue has no successor left to push to.
// Each such task wakes TBB workers that then spin for a while: measured, a quarter of the CPU of a
// fetch-only run. This queue speaks the same sender protocol without ever spawning a task:
//
// - push mode: put() hands the front record to the limiter on the calling thread (try_put), in
//   order, one forwarding thread at a time. When the limiter is full it rejects; the queue switches
//   to pull mode and registers itself as the limiter's predecessor.
// - pull mode: the limiter reserves and consumes the front record whenever a slot frees up (on the
//   releasing thread). When the queue is empty the reservation fails and the limiter hands the edge
//   back (register_successor): push mode again. The queue switches to push mode already when it
//   refuses the reservation, so a put() in between cannot be stranded.
//
// Nothing is ever dropped: a record leaves the queue only when the limiter has accepted it. Every
// queued record holds a reservation of the run (`hold`, given back by `unhold` once the limiter has
// accepted it), so the run cannot end while records wait here — for example for a store's COMMIT
// that frees their slots.
//
// park() (a graceful stop) ends that: the queue forwards nothing more, gives back the reservations
// of the records waiting (they were never started, and the run need not wait for them) and keeps
// what arrives later without a reservation. Parked records are destroyed with the queue, after the
// graph, when releasing their permits can no longer reach a limiter; each is handed to `drop` as
// it is parked (the runner marks its permits unfinished: it is not done).
#pragma once

#include <tbb/flow_graph.h>

#include <deque>
#include <functional>
#include <mutex>

namespace sluice {

template <typename T>
class LimitQueue final : public tbb::flow::sender<T> {
 public:
  LimitQueue(tbb::flow::receiver<T>& limiter, std::function<void()> hold, std::function<void()> unhold,
             std::function<void(const T&)> drop = {})
      : limiter_(limiter), hold_(std::move(hold)), unhold_(std::move(unhold)), drop_(std::move(drop)) {}
  LimitQueue(const LimitQueue&) = delete;
  LimitQueue& operator=(const LimitQueue&) = delete;

  // Any thread. Queues `item` and, in push mode, forwards what the limiter accepts. False when the
  // queue is parked: the item is kept, not forwarded.
  bool put(T item) {
    hold_();
    std::unique_lock lock(mutex_);
    if (parked_) {
      if (drop_) drop_(item);
      items_.push_back({std::move(item), false});
      ++dropped_;
      lock.unlock();
      unhold_();
      return false;
    }
    items_.push_back({std::move(item), true});
    if (pull_ || forwarding_) return true;  // the limiter pulls, or another thread is forwarding
    forwarding_ = true;
    bool rejected = false;
    while (!pull_ && !parked_ && !items_.empty()) {
      T front = items_.front().item;  // stays queued until accepted: nothing else takes the front in push mode
      lock.unlock();
      const bool accepted = limiter_.try_put(front);
      lock.lock();
      if (!accepted) {
        pull_ = true;
        rejected = true;
        break;
      }
      const bool held = items_.front().held;
      items_.pop_front();
      lock.unlock();
      if (held) unhold_();  // the limiter's successors hold the record now
      lock.lock();
    }
    forwarding_ = false;
    const bool parked = parked_;
    const std::size_t unheld = parked ? drop_holds() : 0;
    lock.unlock();
    for (std::size_t i = 0; i < unheld; ++i) unhold_();
    // Outside our lock: the limiter takes its own locks and may reserve from us at once.
    if (rejected && !parked) tbb::detail::d1::register_predecessor(limiter_, *this);
    return true;
  }

  // Any thread, once (a graceful stop): forwards nothing more and gives back the reservations of the
  // waiting records.
  void park() {
    std::unique_lock lock(mutex_);
    parked_ = true;
    const std::size_t unheld = drop_holds();
    lock.unlock();
    for (std::size_t i = 0; i < unheld; ++i) unhold_();
  }

  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return items_.size();
  }
  // Records that wait to be forwarded (not the parked ones).
  std::size_t waiting() const {
    std::lock_guard lock(mutex_);
    return items_.size() - dropped_;
  }
  // Records that will never be forwarded: waiting when the queue was parked, or put after.
  std::size_t dropped() const {
    std::lock_guard lock(mutex_);
    return dropped_;
  }

  bool try_reserve(T& out) override {
    std::lock_guard lock(mutex_);
    if (items_.empty() || parked_) {
      pull_ = false;  // the limiter gives the edge back next (register_successor)
      return false;
    }
    out = items_.front().item;
    reserved_ = true;
    return true;
  }
  bool try_release() override {
    std::size_t unheld = 0;
    {
      std::lock_guard lock(mutex_);
      reserved_ = false;
      if (parked_) unheld = drop_holds();
    }
    for (std::size_t i = 0; i < unheld; ++i) unhold_();
    return true;
  }
  bool try_consume() override {
    bool held = false;
    {
      std::lock_guard lock(mutex_);
      reserved_ = false;
      if (items_.empty()) return true;
      held = items_.front().held;
      items_.pop_front();
    }
    if (held) unhold_();
    return true;
  }
  bool try_get(T&) override { return false; }

 protected:
  // The limiter returns the edge after a failed reservation; try_reserve() already switched modes.
  bool register_successor(tbb::flow::receiver<T>&) override { return true; }
  bool remove_successor(tbb::flow::receiver<T>&) override { return true; }

 private:
  struct Waiting {
    T item;
    bool held;  // holds a reservation of the run
  };

  // With the lock held, once parked: marks every waiting record that no thread is handing to the
  // limiter as no longer holding a reservation. Returns how many to give back (outside the lock).
  std::size_t drop_holds() {
    std::size_t unheld = 0;
    const bool front_busy = forwarding_ || reserved_;
    for (std::size_t i = front_busy ? 1 : 0; i < items_.size(); ++i) {
      if (items_[i].held) {
        items_[i].held = false;
        if (drop_) drop_(items_[i].item);
        ++unheld;
      }
    }
    dropped_ += unheld;
    return unheld;
  }

  tbb::flow::receiver<T>& limiter_;
  std::function<void()> hold_, unhold_;
  std::function<void(const T&)> drop_;
  mutable std::mutex mutex_;
  std::deque<Waiting> items_;
  bool pull_ = false;        // the limiter holds us as its predecessor and reserves from us
  bool forwarding_ = false;  // a thread is handing the front records to the limiter
  bool reserved_ = false;    // the limiter has reserved the front record
  bool parked_ = false;      // a graceful stop: nothing more is forwarded
  std::size_t dropped_ = 0;
};

}  // namespace sluice
