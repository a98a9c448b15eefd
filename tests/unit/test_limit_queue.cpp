// LimitQueue in front of a real limiter_node: nothing dropped, nothing admitted twice, never more
// than the bound in flight, with puts and releases racing on several threads.
#include <tbb/flow_graph.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "../../engine/src/limit_queue.hpp"

namespace {

using Limiter = tbb::flow::limiter_node<int, long>;
using Admit = tbb::flow::function_node<int, tbb::flow::continue_msg, tbb::flow::lightweight>;

constexpr int kBound = 4;
constexpr int kPerProducer = 20000;
constexpr int kProducers = 3;

// A limiter of kBound behind a LimitQueue; admitted records are held until one of two releaser
// threads returns their slot, one at a time, as records leaving the graph on other threads do.
struct Rig {
  tbb::flow::graph g;
  Limiter limiter{g, kBound};
  std::mutex held_mutex;
  std::vector<int> held;  // admitted and not yet released
  std::atomic<int> admitted{0}, released{0}, in_flight{0}, max_in_flight{0};
  std::vector<std::vector<int>> order{kProducers};  // admitted values per producer
  Admit admit{g, tbb::flow::unlimited, [this](int v) noexcept {
                int now = ++in_flight;
                int seen = max_in_flight.load();
                while (now > seen && !max_in_flight.compare_exchange_weak(seen, now)) {
                }
                std::lock_guard lock(held_mutex);
                order[static_cast<std::size_t>(v / kPerProducer)].push_back(v % kPerProducer);
                held.push_back(v);
                ++admitted;
                return tbb::flow::continue_msg{};
              }};
  std::atomic<int> held_by_queue{0};
  std::mutex dropped_mutex;
  std::vector<int> dropped;  // what the queue reported dropped (its `drop` hook), in order
  sluice::LimitQueue<int> queue{limiter, [this] { ++held_by_queue; }, [this] { --held_by_queue; },
                                [this](const int& v) {
                                  std::lock_guard lock(dropped_mutex);
                                  dropped.push_back(v);
                                }};
  std::atomic<bool> done{false};
  std::vector<std::thread> releasers, producers;

  Rig() {
    tbb::flow::make_edge(limiter, admit);
    for (int i = 0; i < 2; ++i) releasers.emplace_back([this] { release_loop(); });
    for (int p = 0; p < kProducers; ++p) {
      producers.emplace_back([this, p] {
        for (int i = 0; i < kPerProducer; ++i) queue.put(p * kPerProducer + i);
      });
    }
  }

  void release_loop() {
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
  }

  // Joins the producers, lets the releasers run until `settled` holds, then stops everything.
  void finish(const std::function<bool()>& settled) {
    for (auto& t : producers) t.join();
    while (!settled()) std::this_thread::yield();
    done = true;
    for (auto& t : releasers) t.join();
    g.wait_for_all();
  }
};

}  // namespace

TEST_CASE("a limit queue admits every record exactly once, in order, never above the bound", "[limit]") {
  Rig rig;
  rig.finish([&] { return rig.released.load() == kPerProducer * kProducers; });

  CHECK(rig.queue.size() == 0);
  CHECK(rig.held_by_queue.load() == 0);
  CHECK(rig.max_in_flight.load() <= kBound);
  for (const auto& seq : rig.order) {
    REQUIRE(seq.size() == kPerProducer);
    for (int i = 0; i < kPerProducer; ++i) REQUIRE(seq[static_cast<std::size_t>(i)] == i);
  }
}

TEST_CASE("a parked limit queue forwards nothing more, and every record is admitted or dropped once", "[limit]") {
  // A graceful stop parks the queue while producers put and releasers free slots.
  Rig rig;
  while (rig.admitted.load() < 1000) std::this_thread::yield();
  rig.queue.park();
  const int admitted_at_park = rig.admitted.load();
  // The releasers then free every slot: a parked queue must not hand anything more over.
  rig.finish([&] { return rig.released.load() == rig.admitted.load(); });

  CHECK(rig.held_by_queue.load() == 0);                // no reservation of the run is left behind
  CHECK(rig.admitted.load() <= admitted_at_park + 1);  // at most the record being handed over
  CHECK(static_cast<std::size_t>(rig.admitted.load()) + rig.queue.dropped() == kPerProducer * kProducers);
  CHECK(rig.queue.size() == rig.queue.dropped());
  CHECK(rig.queue.waiting() == 0);
  // The drop hook (which marks a record's permits unfinished) saw each dropped record once, and
  // none that was admitted.
  CHECK(rig.dropped.size() == rig.queue.dropped());
  std::vector<bool> seen(kPerProducer * kProducers, false);
  for (std::size_t p = 0; p < rig.order.size(); ++p) {
    for (int i : rig.order[p]) seen[p * kPerProducer + static_cast<std::size_t>(i)] = true;
  }
  for (int v : rig.dropped) {
    REQUIRE_FALSE(seen[static_cast<std::size_t>(v)]);
    seen[static_cast<std::size_t>(v)] = true;
  }
  CHECK(std::count(seen.begin(), seen.end(), true) == kPerProducer * kProducers);
}
