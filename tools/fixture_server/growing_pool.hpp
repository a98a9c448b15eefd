// A task queue for cpp-httplib servers (the fixture server, sluice's --metrics) that starts its
// threads as they are needed and survives the system refusing one.
#pragma once

#include <httplib.h>

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

namespace sluice::fixture {

// httplib's ThreadPool starts all its threads at once, and one the system refuses (a process limit
// of threads or of memory: ulimit -u or -v, a container's pids.max) ends the process. This pool
// starts a thread when a connection finds none idle, up to `max`; refused one, it goes on with
// those it has (none: the connection is served on the listening thread, one at a time).
class GrowingPool final : public httplib::TaskQueue {
 public:
  explicit GrowingPool(std::size_t max) : max_(max) {}

  // The listening thread.
  void enqueue(std::function<void()> job) override {
    std::unique_lock lock(mutex_);
    jobs_.push_back(std::move(job));
    if (jobs_.size() > idle_ && threads_.size() < max_) {
      try {
        threads_.emplace_back([this] { work(); });
      } catch (const std::system_error&) {
        max_ = threads_.size();
      }
    }
    if (threads_.empty()) {
      std::function<void()> mine = std::move(jobs_.front());
      jobs_.pop_front();
      lock.unlock();
      mine();
      return;
    }
    lock.unlock();
    ready_.notify_one();
  }

  // The listening thread, once it has stopped accepting: the jobs queued still run.
  void shutdown() override {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    ready_.notify_all();
    for (auto& t : threads_) t.join();
  }

 private:
  void work() {
    std::unique_lock lock(mutex_);
    for (;;) {
      ++idle_;
      ready_.wait(lock, [this] { return !jobs_.empty() || stopping_; });
      --idle_;
      if (jobs_.empty()) return;
      std::function<void()> job = std::move(jobs_.front());
      jobs_.pop_front();
      lock.unlock();
      job();
      lock.lock();
    }
  }

  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;
  std::size_t idle_ = 0;
  std::size_t max_;
  bool stopping_ = false;
};

}  // namespace sluice::fixture
