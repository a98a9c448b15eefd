// Builds a oneTBB flow graph from a Plan and runs it.
//
// Threads: each source runs on its own thread and pushes batches into the graph behind a Gate
// (max_pending batches in flight); transforms run on TBB workers; each sink writes on its own
// thread. A waiter thread sits in wait_for_all() while the graph runs; the main thread waits for
// it, or, when cancelled work has not ended within abort_timeout (code stuck in a node), stops
// waiting: sinks commit what they received and the run returns abandoned (see RunReport).
#include <fmt/format.h>
#include <tbb/flow_graph.h>
#include <tbb/global_control.h>
#include <tbb/task_arena.h>
#include <tbb/task_group.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include <pthread.h>

#include "limit_queue.hpp"
#include "sluice/batch.hpp"
#include "sluice/run.hpp"
#include "sluice/state.hpp"

namespace sluice {

std::string RunError::to_string() const {
  if (record.empty()) return fmt::format("node '{}': {}", node, message);
  return fmt::format("node '{}': record '{}': {}", node, record, message);
}

int RunReport::exit_code() const {
  switch (status) {
    case RunStatus::succeeded:
      return 0;
    case RunStatus::failed:
      return 1;
    case RunStatus::interrupted:
      return stop_signal > 0 ? 128 + stop_signal : 130;
  }
  return 1;
}

void StopSignal::request(int signal_number) {
  if (signal_number > 0 && signal_.load() == 0) signal_.store(signal_number);
  int count = ++requests_;
  std::lock_guard lock(mutex_);
  if (on_request_) on_request_(count);
}

void StopSignal::attach(std::function<void(int)> on_request) {
  int pending;
  {
    std::lock_guard lock(mutex_);
    on_request_ = std::move(on_request);
    pending = requests_.load();
    if (pending > 0) on_request_(pending);
  }
}

void StopSignal::detach() {
  std::lock_guard lock(mutex_);
  on_request_ = nullptr;
}

namespace {

using Clock = std::chrono::steady_clock;
using InputNode = tbb::flow::function_node<Message, tbb::flow::continue_msg>;
// Bodies that only hand work over (to a sink's thread, to an async node) run inline in the thread
// that puts the message, instead of costing a TBB task and a worker wake-up each. oneTBB runs a
// lightweight body inline only when the body is noexcept; otherwise it silently spawns a task.
using HandOffNode = tbb::flow::function_node<Message, tbb::flow::continue_msg, tbb::flow::lightweight>;

// What the exception being handled says, and for a SinkBatchError how many records it lost. Node
// code (plugins') may throw anything; whatever it throws fails its node, never the process.
struct Caught {
  std::string message;
  std::optional<std::uint64_t> records;
};
// Why the system refuses a thread, most likely: said with every refusal.
constexpr std::string_view kThreadLimits =
    "the process may have reached a limit: of threads, ulimit -u or a container's pids limit, or of memory, "
    "ulimit -v";

Caught caught() {
  try {
    throw;
  } catch (const SinkBatchError& e) {
    return {e.what(), e.records()};
  } catch (const std::system_error& e) {  // a node's start() whose thread the system refused, most likely
    if (e.code() == std::errc::resource_unavailable_try_again) return {thread_refused(e), std::nullopt};
    return {e.what(), std::nullopt};
  } catch (const std::exception& e) {
    return {e.what(), std::nullopt};
  } catch (...) {
    return {"an exception that is not a std::exception", std::nullopt};
  }
}

// What an async node hands back: records, each with its error if it failed.
struct AsyncResult {
  Record record;
  std::optional<std::string> error;
};
using AsyncResultPtr = std::shared_ptr<std::vector<AsyncResult>>;
using AsyncFlowNode = tbb::flow::async_node<Message, AsyncResultPtr>;
using AsyncGateway = AsyncFlowNode::gateway_type;
// Routes an async node's results (on_error, ports) on the thread that delivers them; the work that
// follows (transforms) is queued as TBB tasks by their own nodes.
using ResultNode = tbb::flow::function_node<AsyncResultPtr, tbb::flow::continue_msg, tbb::flow::lightweight>;
using LimiterNode = tbb::flow::limiter_node<Message, long>;

// The capacity of a `limit` node. Each admitted record gets one Permit; its release decrements the
// limiter_node. After teardown (close()) releases are only counted: the limiter is gone.
class LimitPermits;

// Collects limit releases made by this thread while it is alive and returns them with one
// decrement per limit when it ends, instead of one limiter message per record. Used around the
// places that drop many records at once (a sink's batch, a transform's batch, async results).
class ReleaseScope {
 public:
  ReleaseScope() : outer_(current_) { current_ = this; }
  ~ReleaseScope();
  ReleaseScope(const ReleaseScope&) = delete;
  ReleaseScope& operator=(const ReleaseScope&) = delete;

  // Defers one release of `limit`; false when no scope is open on this thread.
  static bool defer(LimitPermits* limit) {
    if (!current_) return false;
    for (auto& [l, n] : current_->pending_) {
      if (l == limit) {
        ++n;
        return true;
      }
    }
    current_->pending_.emplace_back(limit, 1);
    return true;
  }

 private:
  static thread_local ReleaseScope* current_;
  ReleaseScope* outer_;
  std::vector<std::pair<LimitPermits*, long>> pending_;
};
thread_local ReleaseScope* ReleaseScope::current_ = nullptr;

// Collects the async nodes that got submit() calls on this thread while it is open, and calls each
// one's submitted() once when it closes: one wake-up of a node's thread per burst of records (the
// records a batch of released limit slots lets through) instead of one per record.
class SubmitBurst {
 public:
  SubmitBurst() : outer_(current_) { current_ = this; }
  ~SubmitBurst() {
    current_ = outer_;
    for (AsyncNode* node : nodes_) node->submitted();
  }
  SubmitBurst(const SubmitBurst&) = delete;
  SubmitBurst& operator=(const SubmitBurst&) = delete;

  // `node` got records on this thread: wakes it now, or when the open burst closes.
  static void note(AsyncNode& node) {
    if (!current_) return node.submitted();
    if (std::find(current_->nodes_.begin(), current_->nodes_.end(), &node) == current_->nodes_.end())
      current_->nodes_.push_back(&node);
  }

 private:
  static thread_local SubmitBurst* current_;
  SubmitBurst* outer_;
  std::vector<AsyncNode*> nodes_;
};
thread_local SubmitBurst* SubmitBurst::current_ = nullptr;

class LimitPermits final : public PermitSource {
 public:
  using DeferredNode = tbb::flow::function_node<long, tbb::flow::continue_msg>;

  void attach(tbb::flow::graph& g, LimiterNode& limiter) {
    limiter_ = &limiter;
    deferred_ = std::make_unique<DeferredNode>(g, tbb::flow::serial, [this](long n) {
      decrement(n);
      return tbb::flow::continue_msg{};
    });
  }
  PermitRef issue() {
    admitted_.fetch_add(1, std::memory_order_relaxed);
    return std::make_shared<const Permit>(*this);
  }
  void on_release(std::uint64_t) noexcept override {
    if (!ReleaseScope::defer(this)) release(1);
  }
  void release(long n) noexcept {
    released_.fetch_add(n, std::memory_order_relaxed);
    if (!open_.load(std::memory_order_acquire)) return;
    // Inside a limiter's forward (the admission body and what it runs inline) the limiter holds its
    // successor lock: decrementing there would re-enter it and deadlock, so a task does it later.
    if (Admission::active()) {
      deferred_->try_put(n);
      return;
    }
    decrement(n);
  }
  // Marks the admission body running on this thread.
  class Admission {
   public:
    Admission() { ++depth_; }
    ~Admission() { --depth_; }
    static bool active() { return depth_ > 0; }

   private:
    static thread_local int depth_;
  };
  void close() { open_.store(false, std::memory_order_release); }
  void reset_nodes() { deferred_.reset(); }
  bool saturated() const { return admitted_.load() - released_.load() >= max_; }
  void set_max(std::int64_t max) { max_ = max; }
  std::int64_t admitted() const { return admitted_.load(); }
  std::int64_t released() const { return released_.load(); }

 private:
  // One slot at a time: the limiter then forwards the next record inline on this thread (through
  // the lightweight admission node) instead of spawning a TBB task for each extra free slot.
  void decrement(long n) noexcept {
    for (long i = 0; i < n; ++i) limiter_->decrementer().try_put(1);
  }

  LimiterNode* limiter_ = nullptr;
  std::unique_ptr<DeferredNode> deferred_;
  std::int64_t max_ = 0;
  std::atomic<bool> open_{true};
  std::atomic<std::int64_t> admitted_{0}, released_{0};
};

thread_local int LimitPermits::Admission::depth_ = 0;

struct LiveStats {
  std::atomic<std::uint64_t> in{0}, out{0}, errors{0}, dropped{0};
  std::atomic<std::int64_t> busy_ns{0};
  // NodeContext::received: written by one thread of the node at a time (fetch: for each piece of a
  // body), so on a cache line of its own (the last member), away from the counters other threads write.
  alignas(64) std::atomic<std::uint64_t> bytes{0};

  void add_busy(Clock::time_point since) {
    busy_ns.fetch_add((Clock::now() - since).count(), std::memory_order_relaxed);
  }
  NodeStats snapshot(const std::string& id, const std::string& type) const {
    return NodeStats{id,
                     type,
                     in.load(),
                     out.load(),
                     errors.load(),
                     std::chrono::nanoseconds(busy_ns.load()),
                     dropped.load(),
                     bytes.load()};
  }
};

class ErrorLog {
 public:
  explicit ErrorLog(std::size_t keep) : keep_(keep) {}

  void add(RunError error) {
    error.record = hide_credentials(std::move(error.record));
    error.message = hide_credentials(std::move(error.message));
    std::lock_guard lock(mutex_);
    // A node that fails the same way again (a sink whose close() meets the full disk its write()
    // met) is reported once.
    if (error.record.empty() && std::any_of(errors_.begin(), errors_.end(), [&](const RunError& e) {
          return e.record.empty() && e.node == error.node && e.message == error.message;
        })) {
      return;
    }
    if (errors_.size() < keep_) {
      errors_.push_back(std::move(error));
    } else {
      ++dropped_;
    }
  }
  std::vector<RunError> take() {
    std::lock_guard lock(mutex_);
    return std::move(errors_);
  }
  std::uint64_t dropped() const {
    std::lock_guard lock(mutex_);
    return dropped_;
  }
  bool empty() const {
    std::lock_guard lock(mutex_);
    return errors_.empty() && dropped_ == 0;
  }

 private:
  mutable std::mutex mutex_;
  std::size_t keep_;
  std::vector<RunError> errors_;
  std::uint64_t dropped_ = 0;
};

// The group key of a skipped error (see SkippedErrors): the message up to its first ": " (the kind:
// "timeout", "dns", "HTTP 404"; what follows is the detail: libcurl's words, a host, a size), with
// the record's text (its URL) taken out.
std::string skip_key(const std::string& record, std::string message) {
  message.resize(std::min(message.size(), message.find(": ")));
  for (std::size_t at; !record.empty() && (at = message.find(record)) != std::string::npos;)
    message.replace(at, record.size(), "\x01");
  return message;
}

// Nodes' notices (NodeContext::notice): kept in order, Notice::kPerNode per node; beyond that
// counted, and said in one last notice of the node.
class NoticeLog {
 public:
  void add(const std::string& node, std::string message) {
    message = hide_credentials(std::move(message));
    std::lock_guard lock(mutex_);
    std::size_t& count = counts_[node];
    if (++count <= Notice::kPerNode) notices_.push_back(Notice{node, std::move(message)});
  }
  // The notices that came since the last call.
  std::vector<Notice> fresh() {
    std::lock_guard lock(mutex_);
    std::vector<Notice> out(notices_.begin() + static_cast<std::ptrdiff_t>(reported_), notices_.end());
    reported_ = notices_.size();
    return out;
  }
  std::vector<Notice> take() {
    std::lock_guard lock(mutex_);
    for (const auto& [node, count] : counts_) {
      if (count > Notice::kPerNode) {
        notices_.push_back(Notice{node, fmt::format("{} more notices not shown", count - Notice::kPerNode)});
      }
    }
    counts_.clear();
    reported_ = 0;
    return std::move(notices_);
  }

 private:
  std::mutex mutex_;
  std::vector<Notice> notices_;
  std::size_t reported_ = 0;
  std::map<std::string, std::size_t> counts_;
};

// The errors on_error: skip dropped, grouped per node (SkippedErrors). Skips are rare next to
// records, so one mutex is enough.
class SkipLog {
 public:
  void add(const std::string& node, std::string record, std::string message, std::uint64_t count) {
    record = hide_credentials(std::move(record));
    message = hide_credentials(std::move(message));
    std::string key = skip_key(record, message);
    std::lock_guard lock(mutex_);
    std::size_t groups = 0;
    for (Group& g : groups_) {
      if (g.errors.node != node) continue;
      ++groups;
      if (g.key == key) {
        g.errors.count += count;
        return;
      }
    }
    if (groups >= SkippedErrors::kGroupsPerNode) {
      // Past the limit every new kind goes to the node's group of other kinds (empty message).
      key = kOtherKinds;
      record.clear();
      message.clear();
      for (Group& g : groups_) {
        if (g.errors.node == node && g.key == kOtherKinds) {
          g.errors.count += count;
          return;
        }
      }
    }
    groups_.push_back(Group{std::move(key), SkippedErrors{node, std::move(record), std::move(message), count}});
  }
  // The groups that appeared since the last call, as they were when they appeared.
  std::vector<SkippedErrors> fresh() {
    std::lock_guard lock(mutex_);
    std::vector<SkippedErrors> out;
    for (; reported_ < groups_.size(); ++reported_) {
      out.push_back(groups_[reported_].errors);
      out.back().count = 1;
    }
    return out;
  }
  std::vector<SkippedErrors> take() {
    std::lock_guard lock(mutex_);
    std::vector<SkippedErrors> out;
    for (Group& g : groups_) out.push_back(std::move(g.errors));
    groups_.clear();
    reported_ = 0;
    return out;
  }

 private:
  static constexpr const char* kOtherKinds = "\x02";  // the key of the group of other kinds: a lone control byte
  struct Group {
    std::string key;
    SkippedErrors errors;
  };
  std::mutex mutex_;
  std::vector<Group> groups_;
  std::size_t reported_ = 0;
};

// An output port: the receivers of every edge that starts at it. Each receiver gets a batch of
// its own (copies for fan-out), so receivers may modify what they get.
struct OutPort {
  std::vector<tbb::flow::receiver<Message>*> targets;

  void send(Message message) const {
    if (targets.empty() || message->records.empty()) return;
    for (std::size_t i = 1; i < targets.size(); ++i) {
      auto copy = std::make_shared<Batch>(*message);
      targets[i]->try_put(copy);
    }
    targets[0]->try_put(message);
  }
};

// Queue of batches handed from the graph to a sink's own thread. Each queued batch holds one graph
// reservation, so wait_for_all() cannot return while a sink still has work.
class SinkQueue {
 public:
  void push(Message m) {
    {
      std::lock_guard lock(mutex_);
      items_.push_back(std::move(m));
    }
    cv_.notify_one();
  }
  void close() {
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
    }
    cv_.notify_one();
  }
  // Waits up to `wait` for a batch; null on timeout, or once closed and empty (see closed_and_empty).
  Message pop_for(std::chrono::nanoseconds wait) {
    std::unique_lock lock(mutex_);
    cv_.wait_for(lock, wait, [&] { return closed_ || !items_.empty(); });
    if (items_.empty()) return nullptr;
    Message m = std::move(items_.front());
    items_.pop_front();
    return m;
  }
  bool empty() {
    std::lock_guard lock(mutex_);
    return items_.empty();
  }
  bool closed_and_empty() {
    std::lock_guard lock(mutex_);
    return closed_ && items_.empty();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Message> items_;
  bool closed_ = false;
};

class Run;

// A resumable run's source records: each carries one permit of this, tagged with its position;
// when the record and everything derived from it has left the graph, the position is recorded as
// done in the run state.
class SourceProgress final : public PermitSource {
 public:
  SourceProgress(RunState& state, std::string node) : state_(state), node_(std::move(node)) {}

  PermitRef issue(std::uint64_t seq) { return std::make_shared<const Permit>(*this, seq); }
  void on_release(std::uint64_t seq) noexcept override { state_.record_done(node_, seq); }
  void on_release_unfinished(std::uint64_t) noexcept override {}  // not done: a resumed run redoes it

 private:
  RunState& state_;
  std::string node_;
};

struct Vertex {
  const PlanNode* plan = nullptr;
  std::unique_ptr<Node> impl;
  LiveStats stats;
  std::vector<OutPort> outputs;  // by output index
  std::unique_ptr<InputNode> input;
  std::unique_ptr<HandOffNode> handoff;  // inline input: sinks queue for the sink thread, limits split
  // sources
  std::unique_ptr<Gate> gate;
  std::unique_ptr<SourceProgress> progress;  // resumable runs only
  Message pending;                           // the batch the source thread is filling
  bool reached_end = false;
  // The source's or the sink's own thread.
  std::thread thread;
  // Threads inside the node's own code now (a transform's bodies, a source's next(), an async
  // node's stop()): named in the report when the run stops waiting for them.
  std::atomic<int> active{0};
  bool sink_finished = false;  // the sink thread has returned; guarded by Run::watchdog_mutex_
  // sinks
  std::unique_ptr<SinkQueue> sink_queue;
  bool sink_broken = false;
  std::uint64_t lost_after_failure = 0;  // records that reached a broken sink (sink thread only)
  // An async node is upstream: records arrive with their source batch's tickets (build_async), so
  // what this sink buffers can be what a source's max_pending gate waits for.
  bool holds_source_tickets = false;
  // limits: handoff (splits batches) -> limit_queue -> limiter -> admit -> outputs
  std::unique_ptr<LimitPermits> limit_permits;
  std::unique_ptr<LimitQueue<Message>> limit_queue;
  std::unique_ptr<LimiterNode> limiter;
  std::unique_ptr<HandOffNode> limit_admit;
  // async nodes: input -> async_node (node's own thread) -> results -> outputs
  std::unique_ptr<AsyncFlowNode> async;
  std::unique_ptr<ResultNode> async_results;
  std::unique_ptr<AsyncOutput> async_output;
  // Its start() was called (it may have thrown): only then does it get cancel(), wind_down() and
  // stop(). A run that fails before (a thread refused) never starts it.
  std::atomic<bool> async_started{false};
  std::atomic<std::uint64_t> async_submitted{0}, async_completed{0};
  // Results the results node took (or the node discarded). Those completed but never taken went
  // with a cancelled graph, and count as the node's dropped records at the end.
  std::atomic<std::uint64_t> async_accounted{0};
};

class Run {
 public:
  Run(const Plan& plan, const RunOptions& options)
      : plan_(plan), options_(options), errors_(options.kept_errors), vertices_(plan.nodes.size()) {
    // Set here, not only in instantiate(): a run refused before it (a state file it cannot use)
    // still reports every node's stats.
    for (std::size_t i = 0; i < plan.nodes.size(); ++i) vertices_[i].plan = &plan.nodes[i];
  }

  RunReport execute();

  // on_error: fail semantics. Records the error, then cancels everything once.
  void fail(const Vertex& v, std::string record, std::string message) {
    errors_.add(RunError{v.plan->id, std::move(record), std::move(message)});
    cancel();
  }

  void cancel() {
    // Cancelled work is not done: a resumed run redoes it. Frozen first, before cancelled() is true
    // anywhere: the graph's nodes drop the records they hold once they see it, and a release logged
    // before the freeze would count a record done whose rows were never committed (seen: a page so
    // logged, and the resumed crawl never followed its link; then, with the freeze after the flag,
    // a page dropped on another thread in between, in about 1 run in 10 of a crawl failing mid-way).
    if (state_) state_->freeze();
    if (cancelled_.exchange(true)) return;
    stopping_.store(true);
    stop_source_.request_stop();
    ctx_.cancel_group_execution();
    {
      std::lock_guard lock(watchdog_mutex_);
      abort_deadline_ = Clock::now() + plan_.settings.abort_timeout;
    }
    // Records waiting at a limit, or put there later (a frontier's URL on its way), are dropped at
    // once, not started in the cancelled graph; and where no slot frees up to admit them, their
    // reservations held the run until abort_timeout (seen: 1 run in about 150 of a crawl failing
    // mid-way).
    for (auto& v : vertices_) {
      if (v.limit_queue) v.limit_queue->park();
    }
    for (auto& v : vertices_) {
      if (v.gate) v.gate->close();
      if (v.async_started.load()) static_cast<AsyncNode&>(*v.impl).cancel();
    }
    wake_watchdog();
  }

  // A third stop request: cancel, and stop waiting for cancelled work at once.
  void give_up_now() {
    cancel();
    {
      std::lock_guard lock(watchdog_mutex_);
      abort_deadline_ = Clock::now();
      gave_up_ = true;
    }
    wake_watchdog();
  }

  // A stop request (Ctrl-C, SIGTERM) from the signal watcher's thread: the first stops
  // gracefully, the second cancels, the third stops waiting for cancelled work.
  void on_stop_request(int count) {
    stop_requested_.store(true);
    {
      std::lock_guard lock(wiring_mutex_);
      if (!wired_) {
        held_requests_ = count;
        // A factory waiting for something outside the run (a FIFO's reader) gives up.
        stop_source_.request_stop();
        return;
      }
    }
    act_on_stop(count);
  }
  void act_on_stop(int count) {
    if (count == 1)
      stop_gracefully();
    else if (count == 2)
      cancel();
    else
      give_up_now();
  }
  // The graph is built and its async nodes started: stop requests act on it from now on, and one
  // that came while it was built is carried out now (before any source starts).
  void wire() {
    int held = 0;
    {
      std::lock_guard lock(wiring_mutex_);
      wired_ = true;
      held = held_requests_;
    }
    if (held > 0) act_on_stop(held);
  }

  void stop_gracefully() {
    if (stopping_.exchange(true)) return;
    // Records waiting at a limit (and, in fetch, requests not yet started; a frontier's links not
    // yet parked) end without being processed: those places mark their permits unfinished, so they
    // do not count as done and a resumed run redoes them. What is under way finishes and is
    // recorded as done, so a resumed run does not do it twice.
    stop_source_.request_stop();
    for (auto& v : vertices_) {
      if (v.limit_queue) v.limit_queue->park();
    }
    {
      std::lock_guard lock(watchdog_mutex_);
      stop_deadline_ = Clock::now() + plan_.settings.shutdown_timeout;
    }
    for (auto& v : vertices_) {
      if (v.gate) v.gate->close();
      if (v.async_started.load()) static_cast<AsyncNode&>(*v.impl).wind_down();
    }
    wake_watchdog();
  }

  // settings.max_errors: records that failed in nodes that skip or route them. Past the bound the
  // run stops gracefully (what is under way is finished and committed) and fails, saying why.
  void count_failed(std::uint64_t n) {
    if (!plan_.settings.max_errors) return;
    const auto limit = static_cast<std::uint64_t>(*plan_.settings.max_errors);
    if (failed_records_.fetch_add(n) + n <= limit || too_many_failed_.exchange(true)) return;
    errors_.add(RunError{"settings", "",
                         fmt::format("more than max_errors ({}) records failed in nodes that skip or route them; "
                                     "the run stopped (the stats show where)",
                                     limit)});
    stop_gracefully();
  }

  bool cancelled() const { return cancelled_.load(std::memory_order_relaxed); }
  Vertex& vertex(std::size_t i) { return vertices_[i]; }

  // Every graph reservation made for work outside TBB goes through these two.
  void reserve_external() {
    external_.fetch_add(1);
    graph_->reserve_wait();
  }
  void release_external() {
    if (external_.fetch_sub(1) == 1) {
      { std::lock_guard lock(idle_mutex_); }
      idle_cv_.notify_all();
    }
    graph_->release_wait();
  }
  void count_submitted(Vertex& v) { v.async_submitted.fetch_add(1, std::memory_order_relaxed); }

 private:
  friend class TransformEmitter;

  void wake_watchdog() {
    { std::lock_guard lock(watchdog_mutex_); }
    watchdog_cv_.notify_all();
  }
  // Cancels the run when a graceful stop takes longer than shutdown_timeout.
  void watchdog_loop() {
    std::unique_lock lock(watchdog_mutex_);
    const auto started = Clock::now();
    auto next_progress = started + options_.progress_interval;
    while (!finished_) {
      if (options_.progress && Clock::now() >= next_progress) {
        lock.unlock();
        options_.progress(progress(started));
        lock.lock();
        next_progress = Clock::now() + options_.progress_interval;
        continue;
      }
      if (plan_.settings.max_duration && !stopping_.load() && Clock::now() - started >= *plan_.settings.max_duration) {
        lock.unlock();
        stop_gracefully();  // max_duration: a planned stop, not an interruption
        lock.lock();
        continue;
      }
      if (stop_deadline_ && Clock::now() >= *stop_deadline_ && !cancelled()) {
        lock.unlock();
        stop_timed_out();
        lock.lock();
        continue;
      }
      const bool waiting_for_graph = abort_deadline_ && !graph_done_ && !abandon_;
      if (waiting_for_graph && Clock::now() >= *abort_deadline_) {
        abandon_ = true;  // the main thread stops waiting for the graph (execute())
        watchdog_cv_.notify_all();
        continue;
      }
      auto wake = Clock::time_point::max();
      if (stop_deadline_ && !cancelled()) wake = std::min(wake, *stop_deadline_);
      if (waiting_for_graph) wake = std::min(wake, *abort_deadline_);
      if (plan_.settings.max_duration && !stopping_.load())
        wake = std::min(wake, started + *plan_.settings.max_duration);
      if (options_.progress) wake = std::min(wake, next_progress);
      if (wake == Clock::time_point::max()) {
        watchdog_cv_.wait(lock);
      } else {
        watchdog_cv_.wait_until(lock, wake);
      }
    }
  }
  // shutdown_timeout ran out before the work under way at a graceful stop finished (a slow host):
  // the rest is cancelled, and the run fails saying so, whatever asked for the stop. Before, it was
  // cancelled without a word and a max_duration run succeeded.
  void stop_timed_out() {
    std::uint64_t waiting = 0;
    for (const auto& v : vertices_) {
      if (v.async_output) waiting += v.async_submitted.load() - v.async_completed.load();
      if (v.limit_queue) waiting += v.limit_queue->waiting();
    }
    errors_.add(RunError{"settings", "",
                         fmt::format("shutdown_timeout ({}) ran out before the graceful stop finished; {} cancelled "
                                     "(a longer shutdown_timeout lets them finish)",
                                     duration_text(plan_.settings.shutdown_timeout),
                                     waiting > 0 ? fmt::format("{} records still in flight were", waiting)
                                                 : std::string("the work still in flight was"))});
    cancel();
  }

  RunProgress progress(Clock::time_point started) {
    RunProgress p;
    p.elapsed = Clock::now() - started;
    p.stopping = stopping_.load();
    p.new_skips = skips_.fresh();
    p.new_notices = notices_.fresh();
    for (auto& v : vertices_) {
      p.nodes.push_back(v.stats.snapshot(v.plan->id, v.plan->type->name));
      if (v.limit_queue) p.nodes.back().dropped += v.limit_queue->dropped();
      if (v.limit_permits) p.in_flight += v.limit_permits->admitted() - v.limit_permits->released();
      if (v.limit_queue) p.queued += static_cast<std::int64_t>(v.limit_queue->waiting());
    }
    std::lock_guard lock(tables_mutex_);
    for (const auto& t : tables_) p.tables.push_back(t.head(RunProgress::kTableRows));
    return p;
  }
  void build_limit(Vertex& v);
  void build_async(Vertex& v);

  bool instantiate();
  void build_graph();
  void source_loop(Vertex& v);
  void send_pending(Vertex& v);
  void sink_loop(Vertex& v);
  bool bound_saturated(const Vertex& sink) const;
  void sink_failed(Vertex& v, std::uint64_t records);
  bool async_upstream(std::size_t node) const;
  void transform_body(Vertex& v, const Message& message);
  void check_invariants();
  void start_workers(int workers);
  template <class Body>
  bool start_thread(std::thread& thread, const std::string& node, Body body);
  void wait_for_graph();
  void finish();
  void abandon();

  const Plan& plan_;
  const RunOptions& options_;
  ErrorLog errors_;
  SkipLog skips_;
  NoticeLog notices_;
  std::mutex tables_mutex_;
  std::vector<NodeTable> tables_;  // NodeContext::table, in the order they came, each with its latest rows
  // A resumable run's progress; outlives every permit (declared before the vertices).
  std::unique_ptr<RunState> state_;
  // Declared before the graph: permits and nodes refer to them until the graph is gone.
  std::vector<Vertex> vertices_;
  tbb::task_group_context ctx_;
  std::optional<tbb::flow::graph> graph_;
  std::atomic<bool> cancelled_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<std::uint64_t> failed_records_{0};  // settings.max_errors
  std::atomic<bool> too_many_failed_{false};
  std::stop_source stop_source_;  // requested with stopping_: sources waiting on a pipe give up
  // While instantiate() makes the nodes on maker_ (the run's thread), before any other engine thread
  // calls options_.progress: a factory's notice is shown at once through it.
  std::atomic<bool> making_{false};
  std::thread::id maker_;
  // Reservations held outside TBB (source threads, sink queues, async nodes). While any is held the
  // waiter thread sleeps instead of spinning in wait_for_all(); see wait_for_graph().
  std::atomic<std::int64_t> external_{0};
  std::atomic<std::int64_t> sink_records_{0};
  std::mutex idle_mutex_;
  std::condition_variable idle_cv_;
  std::mutex watchdog_mutex_;
  std::condition_variable watchdog_cv_;
  std::optional<Clock::time_point> stop_deadline_;
  bool finished_ = false;
  // Set by cancel(): when the graph has not finished by then, the run is abandoned. Guarded by
  // watchdog_mutex_, as are graph_done_ (the waiter thread's work is done) and abandon_.
  std::optional<Clock::time_point> abort_deadline_;
  bool graph_done_ = false;
  bool abandon_ = false;
  bool gave_up_ = false;  // by a third stop request, not abort_timeout
  // Stop requests come from another thread (the signal watcher) at any time, also while this
  // run's thread still builds vertices_ and state_. Until the graph is wired (built, its async
  // nodes started), a request is only counted here, and carried out by wire().
  std::mutex wiring_mutex_;
  bool wired_ = false;
  int held_requests_ = 0;
  std::atomic<bool> stop_requested_{false};  // on_stop_request() was called: the run is interrupted
  // Members, not locals of execute(): an abandoned run leaves threads that still use them.
  std::unique_ptr<tbb::task_arena> arena_;
  std::thread watchdog_, waiter_;
};

// Counts a thread inside a node's own code.
class ActiveScope {
 public:
  explicit ActiveScope(std::atomic<int>& count) : count_(count) { count_.fetch_add(1, std::memory_order_relaxed); }
  ~ActiveScope() { count_.fetch_sub(1, std::memory_order_relaxed); }
  ActiveScope(const ActiveScope&) = delete;
  ActiveScope& operator=(const ActiveScope&) = delete;

 private:
  std::atomic<int>& count_;
};

ReleaseScope::~ReleaseScope() {
  current_ = outer_;
  if (pending_.empty()) return;
  SubmitBurst burst;  // the records these slots let through go to their async nodes in one burst
  for (auto& [limit, n] : pending_) limit->release(n);
}

// Delivers an async node's results into the graph through the async_node gateway. Runs on the
// node's own thread: releases the record's fetch permits, puts the result, then releases the
// reservation taken at submit, in that order (so wait_for_all() cannot miss the put).
class GatewayOutput final : public AsyncOutput {
 public:
  GatewayOutput(Run& run, Vertex& v, AsyncGateway& gateway) : run_(run), v_(v), gateway_(gateway) {}

  void complete(Record&& result) override { collect(std::move(result), std::nullopt); }
  void fail(Record&& record, std::string message) override { collect(std::move(record), std::move(message)); }

  void flush() override {
    AsyncResultPtr batch;
    {
      std::lock_guard lock(mutex_);
      if (!pending_ || pending_->empty()) return;
      batch = std::move(pending_);
      urgent_ = false;
    }
    const std::size_t n = batch->size();
    gateway_.try_put(std::move(batch));
    v_.async_completed.fetch_add(n, std::memory_order_relaxed);
    for (std::size_t i = 0; i < n; ++i) run_.release_external();
  }

  void discard(std::size_t count) override {
    v_.stats.dropped.fetch_add(count, std::memory_order_relaxed);
    v_.async_accounted.fetch_add(count, std::memory_order_relaxed);
    v_.async_completed.fetch_add(count, std::memory_order_relaxed);
    for (std::size_t i = 0; i < count; ++i) run_.release_external();
  }

  void adopt(std::size_t count) override {
    for (std::size_t i = 0; i < count; ++i) run_.reserve_external();
    v_.async_submitted.fetch_add(count, std::memory_order_relaxed);
  }

  bool urgent() const override {
    std::lock_guard lock(mutex_);
    return urgent_;
  }

 private:
  void collect(Record&& record, std::optional<std::string> error) {
    {
      ReleaseScope scope;
      record.fetch_permits.clear();
    }
    // The only holder of a permit: its capacity returns as soon as this record moves on.
    bool sole = std::any_of(record.permits.begin(), record.permits.end(),
                            [](const PermitRef& p) { return p.use_count() == 1; });
    std::lock_guard lock(mutex_);
    urgent_ = urgent_ || sole;
    if (!pending_) pending_ = std::make_shared<std::vector<AsyncResult>>();
    pending_->push_back(AsyncResult{std::move(record), std::move(error)});
  }

  Run& run_;
  Vertex& v_;
  AsyncGateway& gateway_;
  mutable std::mutex mutex_;
  AsyncResultPtr pending_;
  bool urgent_ = false;
};

// Collects a transform's output for one input batch, per port, and applies on_error.
class TransformEmitter final : public Emitter {
 public:
  TransformEmitter(Run& run, Vertex& v, const Batch& input, std::size_t batch_limit)
      : run_(run), v_(v), input_(input), pending_(v.outputs.size()), batch_limit_(batch_limit) {
    error_port_ = v.plan->type->output_index("error");
  }

  void emit(Record&& record, std::size_t port) override {
    if (port >= pending_.size()) {
      throw std::logic_error(
          fmt::format("node '{}' emitted to output port {} of {}", v_.plan->id, port, pending_.size()));
    }
    Message& m = pending_[port];
    if (!m) {
      m = input_.derive();
      m->records.reserve(std::min(input_.records.size(), batch_limit_));
    }
    m->records.push_back(std::move(record));
    ++emitted_;
    if (m->records.size() >= batch_limit_) flush(port);
  }

  void fail(Record&& record, std::string message) override {
    v_.stats.errors.fetch_add(1, std::memory_order_relaxed);
    switch (v_.plan->on_error) {
      case OnError::fail:
        run_.fail(v_, record.describe(), std::move(message));
        return;
      case OnError::skip:
        run_.skips_.add(v_.plan->id, record.describe(), std::move(message), 1);
        run_.count_failed(1);
        return;
      case OnError::route:
        record.error = RecordError{v_.plan->id, hide_credentials(std::move(message))};
        emit(std::move(record), static_cast<std::size_t>(error_port_));
        run_.count_failed(1);
        --emitted_;  // routed errors count as errors, not as output
        return;
    }
  }

  void flush_all() {
    for (std::size_t p = 0; p < pending_.size(); ++p) flush(p);
  }
  std::uint64_t emitted() const { return emitted_; }

 private:
  void flush(std::size_t port) {
    if (!pending_[port]) return;
    Message m = std::move(pending_[port]);
    pending_[port] = nullptr;
    v_.outputs[port].send(std::move(m));
  }

  Run& run_;
  Vertex& v_;
  const Batch& input_;
  std::vector<Message> pending_;
  std::size_t batch_limit_;
  int error_port_ = -1;
  std::uint64_t emitted_ = 0;
};

bool Run::instantiate() {
  bool ok = true;
  // Sources last: a source's factory may read what another node's factory set up (source.sqlite
  // preparing a query on a table that a store of the same pipeline creates).
  std::vector<std::size_t> order;
  for (int sources = 0; sources < 2; ++sources) {
    for (std::size_t i = 0; i < plan_.nodes.size(); ++i) {
      if ((plan_.nodes[i].type->kind == NodeKind::source) == (sources == 1)) order.push_back(i);
    }
  }
  maker_ = std::this_thread::get_id();
  making_.store(true, std::memory_order_release);
  struct Made {
    std::atomic<bool>& making;
    ~Made() { making.store(false); }
  } made{making_};
  for (std::size_t i : order) {
    Vertex& v = vertices_[i];
    v.plan = &plan_.nodes[i];
    NodeContext context{v.plan->id,     v.plan->config, v.plan->where,
                        plan_.settings, state_.get(),   stop_source_.get_token()};
    if (v.plan->type->kind == NodeKind::source) context.idle = [this, &v] { send_pending(v); };
    context.notice = [this, &v](std::string message) {
      notices_.add(v.plan->id, std::move(message));
      // From a factory that waits (a FIFO's reader): shown now, not once the run has started.
      if (making_.load(std::memory_order_acquire) && std::this_thread::get_id() == maker_ && options_.progress)
        options_.progress(progress(Clock::now()));
    };
    context.received = &v.stats.bytes;
    context.table = [this, &v](std::string name, std::vector<Record> rows) {
      std::lock_guard lock(tables_mutex_);
      for (auto& t : tables_) {
        if (t.node == v.plan->id && t.name == name) {  // the latest rows of a table given as the run goes
          t.rows = std::move(rows);
          return;
        }
      }
      tables_.push_back(NodeTable{v.plan->id, std::move(name), std::move(rows)});
    };
    try {
      v.impl = v.plan->type->factory(context);
      if (!v.impl) throw NodeError("the node factory returned nothing");
      bool kind_ok = false;
      switch (v.plan->type->kind) {
        case NodeKind::source:
          kind_ok = dynamic_cast<SourceNode*>(v.impl.get()) != nullptr;
          break;
        case NodeKind::transform:
          kind_ok = dynamic_cast<TransformNode*>(v.impl.get()) != nullptr;
          break;
        case NodeKind::sink:
          kind_ok = dynamic_cast<SinkNode*>(v.impl.get()) != nullptr;
          break;
        case NodeKind::async:
          kind_ok = dynamic_cast<AsyncNode*>(v.impl.get()) != nullptr;
          break;
        case NodeKind::limit:
          kind_ok = dynamic_cast<LimitNode*>(v.impl.get()) != nullptr;
          break;
      }
      if (!kind_ok) {
        throw NodeError(fmt::format("the factory of '{}' built a node that is not a {}", v.plan->type->name,
                                    node_kind_name(v.plan->type->kind)));
      }
    } catch (const StoppedWhileMade& e) {
      ok = false;
      if (stop_source_.stop_requested()) break;  // the run stops before it starts: no error
      errors_.add(RunError{v.plan->id, "", e.what()});
    } catch (...) {
      errors_.add(RunError{v.plan->id, "", caught().message});
      ok = false;
    }
  }
  return ok;
}

void Run::build_graph() {
  graph_.emplace(ctx_);
  auto& g = *graph_;
  for (auto& v : vertices_) {
    v.outputs.resize(v.plan->type->port_names(PortDirection::output).size());
    switch (v.plan->type->kind) {
      case NodeKind::source:
        v.gate = std::make_unique<Gate>(plan_.settings.max_pending);
        if (state_ && !v.plan->type->resumes_itself) {
          v.progress = std::make_unique<SourceProgress>(*state_, v.plan->id);
          state_->track(*v.progress, v.plan->id, false);
        }
        break;
      case NodeKind::transform: {
        std::size_t concurrency = v.plan->type->parallel ? tbb::flow::unlimited : tbb::flow::serial;
        v.input = std::make_unique<InputNode>(g, concurrency, [this, &v](const Message& m) {
          transform_body(v, m);
          return tbb::flow::continue_msg{};
        });
        break;
      }
      case NodeKind::limit:
        build_limit(v);
        break;
      case NodeKind::async:
        build_async(v);
        break;
      case NodeKind::sink:
        v.sink_queue = std::make_unique<SinkQueue>();
        v.handoff = std::make_unique<HandOffNode>(g, tbb::flow::unlimited, [this, &v](const Message& m) noexcept {
          reserve_external();
          v.sink_queue->push(m);
          return tbb::flow::continue_msg{};
        });
        break;
    }
  }
  for (const auto& e : plan_.edges) {
    Vertex& from = vertices_[e.from_node];
    Vertex& to = vertices_[e.to_node];
    int port = from.plan->type->output_index(e.from_port);
    tbb::flow::receiver<Message>* target = nullptr;
    if (to.async) {
      target = to.async.get();
    } else if (to.handoff) {
      target = to.handoff.get();
    } else {
      target = to.input.get();
    }
    from.outputs[static_cast<std::size_t>(port)].targets.push_back(target);
  }
  for (std::size_t i = 0; i < vertices_.size(); ++i) {
    if (vertices_[i].sink_queue) vertices_[i].holds_source_tickets = async_upstream(i);
  }
}

bool Run::async_upstream(std::size_t node) const {
  std::vector<bool> seen(vertices_.size());
  std::vector<std::size_t> todo{node};
  while (!todo.empty()) {
    const std::size_t at = todo.back();
    todo.pop_back();
    for (const auto& e : plan_.edges) {
      if (e.to_node != at || seen[e.from_node]) continue;
      if (vertices_[e.from_node].plan->type->kind == NodeKind::async) return true;
      seen[e.from_node] = true;
      todo.push_back(e.from_node);
    }
  }
  return false;
}

void Run::build_limit(Vertex& v) {
  auto& g = *graph_;
  const auto& config = static_cast<const LimitNode&>(*v.impl);
  v.limit_permits = std::make_unique<LimitPermits>();
  v.limiter = std::make_unique<LimiterNode>(g, static_cast<std::size_t>(config.max_in_flight()));
  v.limit_queue = std::make_unique<LimitQueue<Message>>(
      *v.limiter, [this] { reserve_external(); }, [this] { release_external(); },
      [](const Message& m) {
        for (const Record& r : m->records) r.mark_unfinished();
      });
  v.limit_permits->attach(g, *v.limiter);
  v.limit_permits->set_max(config.max_in_flight());
  // Records queue one by one in front of the limiter in a reservable LimitQueue, so nothing is
  // dropped at the bound. Each record keeps its source batch's tickets while it waits.
  // Serial, so that records are admitted in the order they arrive; inline on the putting thread, so
  // that no TBB task (and no worker wake-up) is spent per batch.
  v.handoff = std::make_unique<HandOffNode>(g, tbb::flow::serial, [this, &v](const Message& m) noexcept {
    v.stats.in.fetch_add(m->records.size(), std::memory_order_relaxed);
    SubmitBurst burst;  // the records admitted at once reach an async node behind the limit as one burst
    for (Record& r : m->records) {
      if (cancelled()) break;
      auto one = m->derive();
      one->records.push_back(std::move(r));
      v.limit_queue->put(std::move(one));
    }
    return tbb::flow::continue_msg{};
  });
  const bool after_fetch = config.release_after_fetch();
  v.limit_admit =
      std::make_unique<HandOffNode>(g, tbb::flow::unlimited, [&v, after_fetch](const Message& m) noexcept {
        // Runs inline inside the limiter's forward, which holds the limiter's locks: nothing here (or
        // inline below it) may drop a record, or its permit's release would re-enter the limiter and
        // deadlock. Even when cancelled the record goes on; the next queueing node or async node drops it.
        LimitPermits::Admission admission;
        PermitRef permit = v.limit_permits->issue();
        for (Record& r : m->records) (after_fetch ? r.fetch_permits : r.permits).push_back(permit);
        permit.reset();  // the records own it now
        v.stats.out.fetch_add(m->records.size(), std::memory_order_relaxed);
        v.outputs[0].send(m);
        return tbb::flow::continue_msg{};
      });
  tbb::flow::make_edge(*v.limiter, *v.limit_admit);
}

void Run::build_async(Vertex& v) {
  auto& g = *graph_;
  auto& node = static_cast<AsyncNode&>(*v.impl);
  v.async = std::make_unique<AsyncFlowNode>(
      g, tbb::flow::unlimited, [this, &v, &node](const Message& m, AsyncGateway&) noexcept {
        // Records are submitted even when the run is cancelled: the node fails them on its own
        // thread. Dropping them here could release a limit permit inside the limiter's forward.
        v.stats.in.fetch_add(m->records.size(), std::memory_order_relaxed);
        for (Record& r : m->records) {
          // The record carries its batch's tickets while the node holds it.
          r.permits.insert(r.permits.end(), m->tickets.begin(), m->tickets.end());
          reserve_external();  // the same graph reservation the gateway's reserve_wait() would take
          v.async_submitted.fetch_add(1, std::memory_order_relaxed);
          try {
            node.submit(std::move(r));
          } catch (...) {
            // submit() must not throw; one that does broke its node: the record is lost with the
            // run, counted as the node's error, and its reservation is returned here.
            v.async_submitted.fetch_sub(1, std::memory_order_relaxed);
            v.stats.errors.fetch_add(1, std::memory_order_relaxed);
            fail(v, "", "submit() threw: " + caught().message);
            release_external();
          }
        }
        SubmitBurst::note(node);
      });
  v.async_output = std::make_unique<GatewayOutput>(*this, v, v.async->gateway());
  v.async_results =
      std::make_unique<ResultNode>(g, tbb::flow::unlimited, [this, &v](const AsyncResultPtr& results) noexcept {
        if (cancelled()) return tbb::flow::continue_msg{};  // counted as dropped in finish()
        v.async_accounted.fetch_add(results->size(), std::memory_order_relaxed);
        auto started = Clock::now();
        ReleaseScope scope;
        Batch none;
        TransformEmitter out(*this, v, none, static_cast<std::size_t>(plan_.settings.batch));
        for (AsyncResult& result : *results) {
          if (result.error) {
            out.fail(std::move(result.record), std::move(*result.error));
          } else {
            out.emit(std::move(result.record), 0);
          }
        }
        out.flush_all();
        v.stats.out.fetch_add(out.emitted(), std::memory_order_relaxed);
        v.stats.add_busy(started);
        return tbb::flow::continue_msg{};
      });
  tbb::flow::make_edge(*v.async, *v.async_results);
}

void Run::transform_body(Vertex& v, const Message& message) {
  if (cancelled()) return;
  ActiveScope active(v.active);
  auto started = Clock::now();
  ReleaseScope scope;
  auto& node = static_cast<TransformNode&>(*v.impl);
  Batch& batch = *message;
  v.stats.in.fetch_add(batch.records.size(), std::memory_order_relaxed);
  TransformEmitter out(*this, v, batch, static_cast<std::size_t>(plan_.settings.batch));
  for (Record& record : batch.records) {
    if (cancelled()) break;
    try {
      node.process(record, out);
    } catch (...) {
      out.fail(std::move(record), caught().message);
    }
  }
  batch.records.clear();
  out.flush_all();
  v.stats.out.fetch_add(out.emitted(), std::memory_order_relaxed);
  v.stats.add_busy(started);
}

// FNV-1a over a file's bytes; empty when it cannot be read.
std::string file_digest(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  std::uint64_t hash = 1469598103934665603ULL;
  std::vector<char> chunk(1 << 20);
  std::uint64_t size = 0;
  while (in.read(chunk.data(), static_cast<std::streamsize>(chunk.size())) || in.gcount() > 0) {
    const auto n = static_cast<std::size_t>(in.gcount());
    for (std::size_t i = 0; i < n; ++i) hash = (hash ^ static_cast<unsigned char>(chunk[i])) * 1099511628211ULL;
    size += n;
  }
  return fmt::format("{} bytes, fnv1a {:016x}", size, hash);
}

// What the sources will produce, for a resumable run's state: each source's type and settings,
// and the contents of every file a setting names (a URL list edited between two runs would make
// --resume skip the wrong records).
std::string source_fingerprint(const Plan& plan) {
  std::string out;
  for (const auto& node : plan.nodes) {
    if (node.type->kind != NodeKind::source || node.type->resumes_itself) continue;
    out += node.id + " (" + node.type->name + "):";
    node.config.each([&](const std::string& name, const std::string& text) {
      out += " " + name + "=" + text;
      std::error_code ec;
      if (text != "-" && std::filesystem::is_regular_file(text, ec)) out += " [" + file_digest(text) + "]";
    });
    out += "\n";
  }
  return out;
}

void name_thread(const std::string& kind, const std::string& id) {
  std::string name = (kind + ":" + id).substr(0, 15);  // the kernel keeps 15 characters
  pthread_setname_np(pthread_self(), name.c_str());
}

void Run::source_loop(Vertex& v) {
  name_thread("src", v.plan->id);
  auto& source = static_cast<SourceNode&>(*v.impl);
  const auto batch_size = static_cast<std::size_t>(plan_.settings.batch);
  auto open_batch = [&](PermitRef ticket) {
    v.pending = std::make_shared<Batch>();
    if (ticket) v.pending->tickets.push_back(std::move(ticket));
    v.pending->records.reserve(batch_size);
  };
  std::uint64_t seq = 0;
  try {
    bool more = true;
    while (more && !stopping_.load(std::memory_order_relaxed)) {
      PermitRef ticket = v.gate->acquire();
      if (!ticket) break;
      open_batch(std::move(ticket));
      auto started = Clock::now();
      {
        ActiveScope active(v.active);
        while (!v.pending || v.pending->records.size() < batch_size) {
          Record record;
          if (!source.next(record)) {
            more = false;
            v.reached_end = true;
            break;
          }
          record.meta.seq = seq++;
          if (v.progress) {
            if (state_->source_done(v.plan->id, record.meta.seq)) continue;  // done in an earlier run
            record.permits.push_back(v.progress->issue(record.meta.seq));
          }
          if (!v.pending) {
            // The source waited for this record and sent what it had (idle()): a new batch. When
            // the gate has closed meanwhile (a stop), this last record goes without a ticket.
            PermitRef next_ticket = v.gate->acquire();
            more = next_ticket != nullptr;
            open_batch(std::move(next_ticket));
          }
          v.pending->records.push_back(std::move(record));
          if (!more) break;
        }
      }
      v.stats.add_busy(started);
      send_pending(v);
    }
  } catch (...) {
    v.stats.errors.fetch_add(1);
    fail(v, "", caught().message);
  }
  v.pending.reset();
  release_external();
}

// Sends the records the source thread has gathered, if any (its batch is then gone; an empty one
// is kept with its ticket). On the source's thread: from source_loop, or from next() via idle().
void Run::send_pending(Vertex& v) {
  if (!v.pending || v.pending->records.empty()) return;
  Message batch = std::move(v.pending);
  v.pending = nullptr;
  v.stats.out.fetch_add(batch->records.size(), std::memory_order_relaxed);
  v.outputs[0].send(std::move(batch));
}

// A bound that `sink` may be holding up is full: a limit, an async node's own (a frontier's
// window), or, when records reach the sink with their source batch's tickets (an async node
// upstream), a source's max_pending. The sink then commits, since what it buffers may be what the
// bound waits for.
bool Run::bound_saturated(const Vertex& sink) const {
  for (const auto& v : vertices_) {
    if (v.limit_permits && v.limit_permits->saturated()) return true;
    if (v.async && static_cast<const AsyncNode&>(*v.impl).saturated()) return true;
    if (sink.holds_source_tickets && v.gate && v.gate->saturated()) return true;
  }
  return false;
}

// A sink's write(), flush() or close() threw (call from its catch block). Its error count grows by
// the records it lost: those a SinkBatchError names, else `records` (the write's records, or one).
// on_error: fail (the default) fails the run, and the sink receives nothing more; skip only counts.
void Run::sink_failed(Vertex& v, std::uint64_t records) {
  Caught error = caught();
  const std::uint64_t lost = error.records.value_or(records);
  v.stats.errors.fetch_add(lost);
  if (v.plan->on_error == OnError::fail) {
    v.sink_broken = true;
    fail(v, "", std::move(error.message));
  } else {
    skips_.add(v.plan->id, "", std::move(error.message), lost);
    count_failed(lost);
  }
}

void Run::sink_loop(Vertex& v) {
  name_thread("sink", v.plan->id);
  auto& sink = static_cast<SinkNode&>(*v.impl);
  const auto max_delay = sink.max_delay();
  // A sink that keeps records (and so their limit slots) is flushed when a bound upstream is full;
  // one that keeps only its own output (sink.jsonl) after max_delay only. Neither once the run is
  // cancelled: no slot is waited for then, and what the sink holds is written by close() after the
  // graph has ended. A flush in this loop can take long (a locked database waits out busy_timeout)
  // while the records queued behind it hold the cancelled graph open, until abort_timeout reports
  // a node that was not stuck.
  const bool keeps_records = sink.keeps_records();
  Clock::time_point oldest{};
  auto flush = [&] {
    auto started = Clock::now();
    try {
      sink.flush();
    } catch (...) {
      sink_failed(v, 1);
    }
    v.stats.add_busy(started);
  };
  while (true) {
    // A buffering sink that keeps records wakes at least every few milliseconds to honour
    // max_delay and to notice a full limit upstream; one that keeps only its output wakes when its
    // oldest has waited max_delay; any other sink just waits for input.
    const bool buffering = sink.buffered();
    auto wait = std::chrono::nanoseconds(std::chrono::seconds(1));
    if (buffering && keeps_records) {
      wait = std::chrono::milliseconds(2);
    } else if (buffering) {
      wait = std::max<std::chrono::nanoseconds>(oldest + max_delay - Clock::now(), std::chrono::milliseconds(1));
    }
    Message m = v.sink_queue->pop_for(wait);
    if (!m) {
      if (v.sink_queue->closed_and_empty()) break;
      if (buffering && !cancelled_.load() &&
          (Clock::now() - oldest >= max_delay || (keeps_records && bound_saturated(v)))) {
        flush();
      }
      continue;
    }
    const std::size_t n = m->records.size();
    v.stats.in.fetch_add(n, std::memory_order_relaxed);
    if (plan_.settings.max_items > 0 &&
        sink_records_.fetch_add(n) + static_cast<std::int64_t>(n) >= plan_.settings.max_items) {
      stop_gracefully();  // max_items: a planned stop; what is in flight still arrives and is written
    }
    if (!v.sink_broken) {
      auto started = Clock::now();
      try {
        sink.write(m->records);
      } catch (...) {
        sink_failed(v, n);
      }
      v.stats.add_busy(started);
    } else {
      v.stats.errors.fetch_add(n);  // a broken sink's input is lost: counted, never silent
      v.lost_after_failure += n;
    }
    {
      ReleaseScope scope;
      m.reset();  // returns the batch's permits before the graph may finish
    }
    release_external();
    if (!buffering && sink.buffered()) oldest = Clock::now();
    if (sink.buffered() && !cancelled_.load() &&
        (Clock::now() - oldest >= max_delay || (keeps_records && v.sink_queue->empty() && bound_saturated(v)))) {
      flush();
    }
  }
  auto started = Clock::now();
  try {
    sink.close();
  } catch (...) {
    sink_failed(v, 1);
  }
  v.stats.add_busy(started);
  if (v.lost_after_failure > 0) {  // what was on its way when it failed: said, not only counted
    notices_.add(v.plan->id,
                 fmt::format("{} more record{} reached it after it failed and {} not stored", v.lost_after_failure,
                             v.lost_after_failure == 1 ? "" : "s", v.lost_after_failure == 1 ? "was" : "were"));
  }
  {
    std::lock_guard lock(watchdog_mutex_);
    v.sink_finished = true;
  }
  watchdog_cv_.notify_all();  // an abandoning run waits for its sinks (abandon())
}

void Run::check_invariants() {
  for (auto& v : vertices_) {
    if (v.limit_permits && v.limit_permits->admitted() != v.limit_permits->released()) {
      errors_.add(RunError{v.plan->id, "",
                           fmt::format("engine bug: {} records admitted but {} slots released",
                                       v.limit_permits->admitted(), v.limit_permits->released())});
      cancelled_ = true;
    }
    if (v.async_output && v.async_submitted.load() != v.async_completed.load()) {
      errors_.add(RunError{v.plan->id, "",
                           fmt::format("engine bug: {} records submitted but {} completed", v.async_submitted.load(),
                                       v.async_completed.load())});
      cancelled_ = true;
    }
    if (!v.gate) continue;
    if (v.gate->admitted() != v.gate->released()) {
      errors_.add(RunError{
          v.plan->id, "",
          fmt::format("engine bug: {} batches admitted but {} released", v.gate->admitted(), v.gate->released())});
      cancelled_ = true;
    }
    if (!v.reached_end && !stopping_.load()) {
      errors_.add(RunError{v.plan->id, "", "engine bug: the run finished before the source reached its end"});
      cancelled_ = true;
    }
  }
}

RunReport Run::execute() {
  RunReport report;
  const auto started = Clock::now();
  // The graph runs in an arena of `threads` workers with no slot kept for an outside thread: the
  // waiter thread sleeps while work is held outside TBB (sources streaming, transfers in flight)
  // instead of spinning inside wait_for_all(), and joins only for the final wait.
  const int workers = plan_.settings.threads > 0 ? static_cast<int>(plan_.settings.threads)
                                                 : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  tbb::global_control parallelism(tbb::global_control::max_allowed_parallelism, static_cast<std::size_t>(workers) + 1);
  arena_ = std::make_unique<tbb::task_arena>(workers, 0);
  start_workers(workers);
  if (options_.stop) options_.stop->attach([this](int count) { on_stop_request(count); });
  if (!plan_.settings.state.empty()) {
    try {
      state_ = RunState::open(plan_.settings.state, plan_.settings.name, options_.resume, source_fingerprint(plan_),
                              options_.facts);
    } catch (const std::exception& e) {
      errors_.add(RunError{"settings", "", e.what()});
      cancelled_ = true;
    }
    if (state_ && state_->finished()) {
      report.already_finished = true;
      state_->close(true);
      if (options_.stop) options_.stop->detach();
      report.elapsed = Clock::now() - started;
      return report;
    }
  } else if (options_.resume) {
    errors_.add(RunError{"settings", "", "--resume needs settings.state: the file that records the run's progress"});
    cancelled_ = true;
  }
  if (!cancelled_ && instantiate()) {
    arena_->execute([this] { build_graph(); });  // the graph attaches to this arena
    // Every thread the run needs starts before its sources: one the system refuses (a limit of
    // threads or memory) fails the run before any record flows.
    for (auto& v : vertices_) {
      if (v.sink_queue && !cancelled_) start_thread(v.thread, v.plan->id, [this, &v] { sink_loop(v); });
    }
    if (state_ && !cancelled_) {
      try {
        state_->start();
      } catch (const std::system_error& e) {
        errors_.add(RunError{"settings", "", fmt::format("state file '{}': {}", state_->path(), thread_refused(e))});
        cancel();
      }
    }
    for (auto& v : vertices_) {
      if (!v.async_output || cancelled_) continue;
      try {
        v.async_started.store(true);
        static_cast<AsyncNode&>(*v.impl).start(*v.async_output);
      } catch (...) {
        std::string why = caught().message;  // before any source runs: nothing reaches it
        fail(v, "", why.starts_with("could not start") ? std::move(why) : "could not start: " + why);
      }
    }
    wire();
    // After wire(): its stops (max_duration, shutdown_timeout) act on a built graph too.
    if (!cancelled_) start_thread(watchdog_, "engine", [this] { watchdog_loop(); });
    for (auto& v : vertices_) {
      if (!v.gate || cancelled_) continue;
      reserve_external();
      if (!start_thread(v.thread, v.plan->id, [this, &v] { source_loop(v); })) release_external();
    }
    // A run cancelled by now (a thread refused, a node that could not start) is waited for on
    // this thread; so is one whose waiter thread is refused.
    if (cancelled_ || !start_thread(waiter_, "engine", [this] { wait_for_graph(); })) wait_for_graph();
    bool abandoned = false;
    {
      std::unique_lock lock(watchdog_mutex_);
      watchdog_cv_.wait(lock, [this] { return graph_done_ || abandon_; });
      abandoned = !graph_done_;
    }
    if (abandoned) {
      abandon();
      report.abandoned = true;
    } else {
      finish();
    }
  } else {
    cancelled_ = true;
  }
  if (options_.stop) options_.stop->detach();

  for (auto& v : vertices_) report.nodes.push_back(v.stats.snapshot(v.plan->id, v.plan->type->name));
  report.errors_not_kept = errors_.dropped();
  report.errors = errors_.take();
  report.skipped = skips_.take();
  report.notices = notices_.take();
  {
    std::lock_guard lock(tables_mutex_);
    for (const auto& v : vertices_) {  // plan order
      for (auto& t : tables_) {
        if (t.node == v.plan->id) report.tables.push_back(std::move(t));
      }
    }
    tables_.clear();
  }
  if (!report.errors.empty() || report.errors_not_kept > 0) {
    report.status = RunStatus::failed;
  } else if (stop_requested_.load()) {  // acted on (one after finish()'s detach found nothing left to do)
    report.status = RunStatus::interrupted;
    report.stop_signal = options_.stop->signal_number();
  }
  report.elapsed = Clock::now() - started;
  return report;
}

// oneTBB starts its worker threads when work first comes, on the thread that brings it, and throws
// there when the system refuses one (a limit of threads or memory): on a fetch I/O thread or a sink
// thread that would end the process. So they start here, on the main thread, before any of the
// run's own threads: one task per worker put in the arena asks oneTBB for every worker, which
// starts them within enqueue(). A refusal fails the run. (The tasks hold nothing: one that no
// worker ever runs is lost with the arena.)
void Run::start_workers(int workers) {
  try {
    for (int i = 0; i < workers; ++i) arena_->enqueue([] {});
  } catch (const std::exception& e) {
    errors_.add(
        RunError{"engine", "", fmt::format("could not start TBB's worker threads: {} ({})", e.what(), kThreadLimits)});
    cancelled_ = true;
  }
}

// Starts `thread` running `body`; false when the system refuses it, and the run fails as node
// `node`'s error, cancelled.
template <class Body>
bool Run::start_thread(std::thread& thread, const std::string& node, Body body) {
  try {
    thread = std::thread(std::move(body));
    return true;
  } catch (const std::system_error& e) {
    errors_.add(RunError{node, "", thread_refused(e)});
    cancel();
    return false;
  }
}

// The waiter thread: until the graph and everything outside TBB that feeds it have finished.
void Run::wait_for_graph() {
  name_thread("run", "wait");
  {
    std::unique_lock lock(idle_mutex_);
    idle_cv_.wait(lock, [this] { return external_.load() == 0; });
  }
  try {
    arena_->execute([this] { graph_->wait_for_all(); });
  } catch (const std::exception& e) {
    errors_.add(RunError{"engine", "", fmt::format("engine bug: exception escaped the graph: {}", e.what())});
    cancelled_ = true;
  }
  for (auto& v : vertices_) {
    if (v.gate && v.thread.joinable()) v.thread.join();
  }
  for (auto& v : vertices_) {
    if (!v.async_started.load()) continue;
    ActiveScope active(v.active);
    static_cast<AsyncNode&>(*v.impl).stop();
  }
  for (auto& v : vertices_) {
    auto* transform = dynamic_cast<TransformNode*>(v.impl.get());
    if (!transform) continue;
    ActiveScope active(v.active);
    try {
      transform->finish();
    } catch (...) {
      fail(v, "", "finish() threw: " + caught().message);
    }
  }
  {
    std::lock_guard lock(watchdog_mutex_);
    graph_done_ = true;
  }
  watchdog_cv_.notify_all();
}

// The graph has finished: sinks close, every thread joins, the nodes go, the invariants are checked.
void Run::finish() {
  if (waiter_.joinable()) waiter_.join();
  for (auto& v : vertices_) {
    if (v.sink_queue) v.sink_queue->close();
  }
  for (auto& v : vertices_) {
    if (v.sink_queue && v.thread.joinable()) v.thread.join();
  }
  {
    std::lock_guard lock(watchdog_mutex_);
    finished_ = true;
  }
  watchdog_cv_.notify_all();
  if (watchdog_.joinable()) watchdog_.join();
  // Stop requests end here, before the graph's parts go: the signal thread acts on a request under
  // the StopSignal's lock, which detach() takes. One that comes later finds the work done, and the
  // run does not count as interrupted (execute()).
  if (options_.stop) options_.stop->detach();
  // Limits stop feeding their limiter before the TBB nodes (and the records queued in them) go.
  for (auto& v : vertices_) {
    if (v.limit_permits) v.limit_permits->close();
  }
  for (auto& v : vertices_) {
    if (v.limit_permits) v.limit_permits->reset_nodes();
    v.input.reset();
    v.handoff.reset();
    v.limit_admit.reset();
    v.limiter.reset();
    if (v.limit_queue) v.stats.dropped.fetch_add(v.limit_queue->dropped());  // parked at a graceful stop
    v.limit_queue.reset();
    v.async_results.reset();
    v.async.reset();
    // Results (a fetch's "cancelled" failures among them) that a cancelled graph never took.
    if (v.async_output) v.stats.dropped.fetch_add(v.async_completed.load() - v.async_accounted.load());
  }
  graph_.reset();
  check_invariants();
  if (state_) {
    bool finished = !cancelled_.load() && !stopping_.load() && errors_.empty();
    for (const auto& v : vertices_) finished = finished && (!v.gate || v.reached_end);
    try {
      state_->close(finished);
    } catch (const std::exception& e) {
      errors_.add(RunError{"settings", "", e.what()});
    }
  }
}

// Cancelled work did not end within abort_timeout: code stuck in a node (a plugin waiting forever,
// say) would otherwise hold the run, and the process, open. Sinks still write and commit what
// they received (each gets abort_timeout more); the threads that do not end are left running,
// and so is this Run (run_pipeline does not destroy it). The stuck nodes are reported.
void Run::abandon() {
  const auto timeout = duration_text(plan_.settings.abort_timeout);
  std::string when;
  {
    std::lock_guard lock(watchdog_mutex_);
    when = gave_up_ ? "was still running at the third stop request"
                    : fmt::format("did not end within abort_timeout ({}) after the run was cancelled", timeout);
  }
  for (auto& v : vertices_) {
    if (v.sink_queue) v.sink_queue->close();
  }
  {
    std::unique_lock lock(watchdog_mutex_);
    watchdog_cv_.wait_until(lock, Clock::now() + plan_.settings.abort_timeout, [this] {
      return std::all_of(vertices_.begin(), vertices_.end(),
                         [](const Vertex& v) { return !v.sink_queue || v.sink_finished; });
    });
  }
  bool named = false;
  for (auto& v : vertices_) {
    std::string what;
    if (v.sink_queue) {
      bool done;
      {
        std::lock_guard lock(watchdog_mutex_);
        done = v.sink_finished;
      }
      if (done) {
        v.thread.join();
      } else if (v.thread.joinable()) {
        v.thread.detach();
        what = fmt::format(
            "did not finish writing within abort_timeout ({}) after the run was cancelled; "
            "what it had not committed is lost",
            timeout);
      }
    } else if (v.active.load() > 0 || (v.async_output && v.async_submitted.load() != v.async_completed.load())) {
      what = when +
             ", so sluice stopped waiting for it: the records it held are lost (the sinks committed "
             "what they had received)";
    }
    if (what.empty()) continue;
    errors_.add(RunError{v.plan->id, "", std::move(what)});
    named = true;
  }
  if (!named) {
    errors_.add(RunError{"engine", "", "the graph " + when + ", so sluice stopped waiting for it"});
  }
  waiter_.detach();  // it joins the source threads, if it ever gets there
  {
    std::lock_guard lock(watchdog_mutex_);
    finished_ = true;
  }
  watchdog_cv_.notify_all();
  watchdog_.join();
  if (state_) {
    try {
      state_->close(false);
    } catch (const std::exception& e) {
      errors_.add(RunError{"settings", "", e.what()});
    }
  }
}

}  // namespace

std::string thread_refused(const std::system_error& error) {
  return fmt::format("could not start a thread: {} ({})", error.code().message(), kThreadLimits);
}

RunReport run_pipeline(const Plan& plan, const RunOptions& options) {
  auto run = std::make_unique<Run>(plan, options);
  RunReport report = run->execute();
  // Threads of an abandoned run still use it (and the plan): it is never destroyed.
  if (report.abandoned) static_cast<void>(run.release());
  return report;
}

}  // namespace sluice
