// Waiting that a stop request cuts short: for the threads of nodes that wait on a clock (a FIFO's
// reader to come, a command to end, credentials to renew) and must end when the run stops.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stop_token>

namespace sluice::nodes {

// Sleeps until `until`, or until `stop` is requested if that comes first; true when it was
// requested. Returns at once once it has been.
template <class Clock, class Duration>
bool sleep_until_stopped(const std::stop_token& stop, std::chrono::time_point<Clock, Duration> until) {
  std::mutex mutex;
  std::condition_variable_any wake;
  std::unique_lock lock(mutex);
  wake.wait_until(lock, stop, until, [] { return false; });
  return stop.stop_requested();
}

template <class Rep, class Period>
bool sleep_for_stopped(const std::stop_token& stop, std::chrono::duration<Rep, Period> length) {
  return sleep_until_stopped(stop, std::chrono::steady_clock::now() + length);
}

}  // namespace sluice::nodes
