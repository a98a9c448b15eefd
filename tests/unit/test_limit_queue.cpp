// LimitQueue in front of a real limiter_node: nothing dropped, nothing admitted twice, never more
// than the bound in flight, with puts and releases racing on several threads.
#include <tbb/flow_graph.h>
#include <catch2/catch.hpp>

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include "../../engine/src/limit_queue.hpp"

namespace {

using Limiter = tbb::flow::limiter_node<int, long>;
using Admit = tbb::flow::function_node<int, tbb::flow::continue_msg, tbb::flow::lightweight>;

}  // namespace

TEST_CASE("a limit queue admits every record exactly once, in order, never above the bound", "[limit]") {
  constexpr int kBound = 4;
  constexpr int kPerProducer = 20000;
  constexpr int kProducers = 3;
  tbb::flow::graph g;
  Limiter limiter(g, kBound);
  std::mutex held_mutex;
  std::vector<int> held;  // admitted and not yet released
  std::atomic<int> in_flight{0}, max_in_flight{0};
  std::vector<std::vector<int>> admitted(kProducers);
  Admit admit(g, tbb::flow::unlimited, [&](int v) noexcept {
    int now = ++in_flight;
    int seen = max_in_flight.load();
    while (now > seen && !max_in_flight.compare_exchange_weak(seen, now)) {
    }
    std::lock_guard lock(held_mutex);
    admitted[static_cast<std::size_t>(v / kPerProducer)].push_back(v % kPerProducer);
    held.push_back(v);
    return tbb::flow::continue_msg{};
  });
  tbb::flow::make_edge(limiter, admit);
  std::atomic<int> held_by_queue{0};
  sluice::LimitQueue<int> queue(
      limiter, [&] { ++held_by_queue; }, [&] { --held_by_queue; });

  std::atomic<int> released{0};
  std::atomic<bool> done{false};
  // Two releasers return slots one at a time, as records leave the graph on other threads.
  auto releaser = [&] {
    while (!done.load()) {
      bool got = false;
      {
        std::lock_guard lock(held_mutex);
        if (!held.empty()) {
          held.pop_back();
          got = true;
        }
      }
      if (got) {
        --in_flight;
        ++released;
        limiter.decrementer().try_put(1);
      } else {
        std::this_thread::yield();
      }
    }
  };
  std::vector<std::thread> threads;
  threads.emplace_back(releaser);
  threads.emplace_back(releaser);
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (int i = 0; i < kPerProducer; ++i) queue.put(p * kPerProducer + i);
    });
  }
  for (auto& t : producers) t.join();
  while (released.load() < kPerProducer * kProducers) std::this_thread::yield();
  done = true;
  for (auto& t : threads) t.join();
  g.wait_for_all();

  CHECK(queue.size() == 0);
  CHECK(held_by_queue.load() == 0);
  CHECK(max_in_flight.load() <= kBound);
  for (const auto& seq : admitted) {
    REQUIRE(seq.size() == kPerProducer);
    for (int i = 0; i < kPerProducer; ++i) REQUIRE(seq[static_cast<std::size_t>(i)] == i);
  }
}

TEST_CASE("a parked limit queue forwards nothing more, and every record is admitted or dropped once", "[limit]") {
  // A graceful stop parks the queue while producers put and releasers free slots on other threads.
  constexpr int kBound = 4;
  constexpr int kPerProducer = 20000;
  constexpr int kProducers = 3;
  tbb::flow::graph g;
  Limiter limiter(g, kBound);
  std::mutex held_mutex;
  std::vector<int> held;
  std::atomic<int> admitted{0};
  Admit admit(g, tbb::flow::unlimited, [&](int v) noexcept {
    ++admitted;
    std::lock_guard lock(held_mutex);
    held.push_back(v);
    return tbb::flow::continue_msg{};
  });
  tbb::flow::make_edge(limiter, admit);
  std::atomic<int> held_by_queue{0};
  sluice::LimitQueue<int> queue(
      limiter, [&] { ++held_by_queue; }, [&] { --held_by_queue; });
  std::atomic<bool> done{false};
  auto releaser = [&] {
    while (!done.load()) {
      bool got = false;
      {
        std::lock_guard lock(held_mutex);
        if (!held.empty()) {
          held.pop_back();
          got = true;
        }
      }
      if (got) {
        limiter.decrementer().try_put(1);
      } else {
        std::this_thread::yield();
      }
    }
  };
  std::vector<std::thread> threads;
  threads.emplace_back(releaser);
  threads.emplace_back(releaser);
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (int i = 0; i < kPerProducer; ++i) queue.put(p * kPerProducer + i);
    });
  }
  while (admitted.load() < 1000) std::this_thread::yield();
  queue.park();
  const int admitted_at_park = admitted.load();
  for (auto& t : producers) t.join();
  // Let the releasers free every slot: a parked queue must not hand anything more over.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  done = true;
  for (auto& t : threads) t.join();
  g.wait_for_all();

  CHECK(held_by_queue.load() == 0);                // no reservation of the run is left behind
  CHECK(admitted.load() <= admitted_at_park + 1);  // at most the record a producer was handing over
  CHECK(static_cast<std::size_t>(admitted.load()) + queue.dropped() == kPerProducer * kProducers);
  CHECK(queue.size() == queue.dropped());
}
