// Node types are declared as data (NodeType) and implemented by one of the runtime interfaces below.
// This header is the contract between the engine and every node, built-in or plugin.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "sluice/schema.hpp"
#include "sluice/value.hpp"

namespace sluice {

enum class NodeKind {
  source,     // produces records on its own thread (SourceNode)
  transform,  // turns records into records on TBB workers (TransformNode)
  async,      // hands records to its own thread for external work, e.g. HTTP (AsyncNode)
  sink,       // consumes records on its own thread (SinkNode)
  limit,      // bounds records in flight; built into the engine (LimitNode)
};
std::string_view node_kind_name(NodeKind kind);

enum class PortDirection { input, output };

struct PortSpec {
  std::string name;
  PortDirection direction = PortDirection::output;
  std::string doc;
};

// What a node does when processing a record fails.
enum class OnError {
  fail,   // cancel the whole run (like asyncio.TaskGroup) and report every error
  skip,   // count the failure and drop the record
  route,  // attach the error to the record and send it to the node's `error` port
};

struct PipelineSettings;
class RunState;

// Everything a factory may read to build one node. Valid only during the factory call, except
// `state`, which outlives the node.
struct NodeContext {
  const std::string& id;
  const Config& config;
  const Location& where;  // the node's position in the pipeline file
  const PipelineSettings& settings;
  RunState* state = nullptr;  // a resumable run's progress (settings.state), else null
  // Requested when the run stops, gracefully or not, also while the nodes are being made. A source
  // that can wait for input indefinitely (a pipe, a socket) watches it and returns false from next()
  // once it is requested; a factory that waits (a FIFO's reader) gives up and throws StoppedWhileMade.
  std::stop_token stop = {};
  // For sources: a source about to wait for input that may be slow to come (a pipe, a socket)
  // calls idle() first, from next() on its own thread. The records it returned so far then go on
  // at once instead of waiting for a full batch (settings.batch).
  std::function<void()> idle = [] {};
  // Any thread, rarely (the engine keeps 100 per node): tells the person running the pipeline
  // something that is not a record's error — a host's circuit breaker opened. Shown as a warning
  // as it happens, and kept in the report (RunReport::notices).
  std::function<void(std::string)> notice = [](std::string) {};
  // Main thread or the node's own, when the node's work is done (an async node's stop(), a sink's
  // close()): a table for the end of the run's report (RunReport::tables) — fetch's requests and
  // failures by host. Rows are records with the same fields in the same order, the ones that matter
  // most first, the first field naming the row: `sluice run` prints the first few, --stats-json has
  // them all. Given again under the same name (also while the node works: fetch gives its hosts
  // every second), its rows replace the earlier ones; the run's progress carries the latest
  // (RunProgress::tables, which --metrics serves).
  std::function<void(std::string name, std::vector<Record> rows)> table = [](std::string, std::vector<Record>) {};
  // The bytes the node takes in from outside, counted as they arrive (fetch adds each piece of a
  // response body): the run's progress shows them per second, NodeStats::bytes has them. Any one
  // thread may add to it (relaxed); null when the node is made outside a run.
  std::atomic<std::uint64_t>* received = nullptr;
};

// Thrown by factories and node bodies for errors a person must fix (a file that cannot be opened,
// a value that is invalid at run time). The engine reports the message with the node id and record.
class NodeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Thrown by a factory that gave up waiting for something outside the run (a file sink waiting for a
// reader to open its FIFO) because NodeContext::stop was requested: the run is stopping before it
// started, so it ends interrupted, without an error and without building the nodes that follow.
// Thrown while no stop was requested, it is the node's error like any other exception.
class StoppedWhileMade : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Thrown by a sink that lost records it had received: a batch that could not be made durable and
// was dropped whole. The node's error count grows by `records` (for any other exception, by the
// records of the write() call, or by one for flush() and close()).
class SinkBatchError : public NodeError {
 public:
  SinkBatchError(const std::string& message, std::size_t records) : NodeError(message), records_(records) {}
  std::size_t records() const { return records_; }
  // Another loss in the same call: one error, this message, both counts.
  void add(const SinkBatchError& more) { records_ += more.records_; }
  // Gathers the losses of one call: the first becomes `losses`, later ones are added to it.
  static void collect(std::optional<SinkBatchError>& losses, const SinkBatchError& loss) {
    if (losses) {
      losses->add(loss);
    } else {
      losses = loss;
    }
  }

 private:
  std::size_t records_;
};

class Node {
 public:
  virtual ~Node() = default;
};

// A source produces records. next() runs on the source's own thread (never a TBB worker), so it
// may block on disk. It is called again after each record until it returns false; the engine stops
// calling it when the run is cancelled. Throw NodeError to fail the run. (Whatever a node's code
// throws, also an exception that is not a std::exception, fails its node and the run, never the
// process.)
class SourceNode : public Node {
 public:
  virtual bool next(Record& out) = 0;
};

// Hands a transform's results to the engine. Valid only during the process() call that received it.
class Emitter {
 public:
  virtual ~Emitter() = default;
  // Sends a record to output port `port` (an index into the node type's output ports, in
  // declaration order; 0 is the first).
  virtual void emit(Record&& record, std::size_t port = 0) = 0;
  // Reports that `record` failed with `message`; the node's on_error decides what happens.
  virtual void fail(Record&& record, std::string message) = 0;
};

// A transform turns each input record into zero or more records. process() runs on TBB workers:
// it must not block on network or disk. With the default serial concurrency it is never called
// concurrently. A NodeError (or any exception) escaping process() fails the record like fail().
class TransformNode : public Node {
 public:
  virtual void process(Record& record, Emitter& out) = 0;
  // Once, after the graph has finished and no process() call runs any more, on success, failure and
  // cancellation alike (not when the run stops waiting for a node stuck in its own code), on the
  // thread that waits for the graph: give the node's last table, or a notice about what the whole
  // run showed (parse.html: a selector that found nothing on any page). A NodeError fails the run.
  // Default: nothing.
  virtual void finish() {}
};

// A sink consumes records on its own thread, in arrival order; every method below runs on that
// thread and may block on disk. Throw NodeError to fail the run.
//
// A sink may keep records after write() returns (a store collecting a transaction): it then moves
// them out of `records`, which also keeps their limit permits until it lets go of them — so a
// `limit` upstream counts them as in flight until they are committed. Such a sink reports
// buffered() and gets flush() calls: when a record has waited max_delay(), when its input is empty
// while a limit is full (nothing more can arrive until it commits), and before close().
// A sink that buffers only what it made of the records (text, say) and lets the records go in
// write() says so with keeps_records() == false: it is flushed after max_delay() only, and its
// thread does not wake every few milliseconds to watch the limits.
class SinkNode : public Node {
 public:
  virtual void write(std::vector<Record>& records) = 0;
  // Called once after the last write, on success, failure and cancellation alike: make everything
  // received durable.
  virtual void close() = 0;

  virtual bool buffered() const { return false; }
  virtual std::chrono::nanoseconds max_delay() const { return std::chrono::nanoseconds(0); }
  virtual void flush() {}
  virtual bool keeps_records() const { return true; }
};

// Where an async node delivers its results. Thread-safe: call from any thread (typically the
// node's own I/O thread). Each call hands one record back to the graph.
class AsyncOutput {
 public:
  virtual ~AsyncOutput() = default;
  // The result of one submitted record (usually the same record with fields added).
  virtual void complete(Record&& result) = 0;
  // The submitted record failed; the node's on_error decides what happens to it.
  virtual void fail(Record&& record, std::string message) = 0;
  // Hands everything complete() and fail() collected since the last flush() to the graph as one
  // batch. Results are not delivered before flush(): call it at the end of every burst of
  // completions, and always before the node's thread waits for more work.
  virtual void flush() = 0;
  // True when a result collected since the last flush() holds capacity that nothing else holds (a
  // limit slot, the last record of a source's batch): then flush() at the end of this burst. While
  // false a node may go on collecting for a short while (HttpLoop: up to 1 ms or 64 results) to hand
  // over fewer, larger batches.
  virtual bool urgent() const = 0;
  // Ends `count` submitted records that produce no output at all (a frontier dropping a URL it has
  // seen). Counts as their completion, and in the node's `dropped` stat. Thread-safe; takes effect
  // at once.
  virtual void discard(std::size_t count = 1) = 0;
  // Ends a submitted record that a graceful stop leaves undone (see AsyncNode::wind_down(): work
  // only queued, or submitted later): marks it unfinished (Record::mark_unfinished(), so that a
  // resumable run does its source record again instead of counting it as done), lets it go, and
  // counts it as discard(1) does. Thread-safe.
  void set_aside(Record&& record) {
    record.mark_unfinished();
    {
      const Record gone = std::move(record);  // its permits go before the count that may end the run
    }
    discard(1);
  }
  // Declares `count` records the node holds without their having been submitted (work restored from
  // a resumed run's state): they count as submitted and must end like submitted records. Call from
  // start() or the node's own thread before they are completed or discarded.
  virtual void adopt(std::size_t count) = 0;
};

// An async node does external work (network I/O) on its own thread, never on TBB workers.
// Contract: for every record given to submit(), the node calls out.complete() or out.fail()
// exactly once, on every path: success, error, timeout, and cancellation. The engine checks this
// after every run.
class AsyncNode : public Node {
 public:
  // Main thread, once, before the first submit(): start the node's own thread(s). `out` stays valid
  // until stop() returns. If it throws, the run fails before any record is submitted; cancel() and
  // stop() are still called. A node whose start() is never called (the run failed before it: a
  // thread the system refused) gets no call of cancel(), wind_down() or stop() either.
  virtual void start(AsyncOutput& out) = 0;
  // Graph thread (a TBB worker, or a thread that released limit slots): hand one record over; must
  // not block, and must not throw (one that does fails the run; the record counts as lost and must
  // not be completed).
  virtual void submit(Record&& record) = 0;
  // Same thread, once after a burst of submit() calls: the records of one batch, or every record
  // that one batch of released limit slots let through. A node whose own thread sleeps wakes it
  // here, once per burst instead of once per record. Default: nothing (submit() woke it).
  virtual void submitted() {}
  // Any thread, possibly concurrently with submit(): abort all work promptly; every pending record
  // still gets its fail(). Records submitted after cancel() fail at once. Idempotent.
  virtual void cancel() = 0;
  // Main thread, once, after the graph has finished: join the node's threads.
  virtual void stop() = 0;
  // Any thread: a graceful stop was requested (signal, max_duration, max_items, max_errors). Finish
  // the work under way but start nothing new: end what is only queued, and what is submitted later,
  // with AsyncOutput::set_aside() (fetch: its requests not yet started), which marks each record
  // unfinished, so that a resumable run does its source record again; a node that keeps such work
  // for a resumed run itself (a frontier: its parked URLs, in the run state) ends it with discard().
  // Default: nothing.
  virtual void wind_down() {}
  // Any thread: records are held back because a bound of this node's own is full (a frontier's
  // window) — records a sink still buffers may be what it waits for, so sinks commit. Default: false.
  virtual bool saturated() const { return false; }
};

// The `limit` node. The engine implements it with a tbb::flow::limiter_node; this object only
// carries its configuration.
class LimitNode final : public Node {
 public:
  LimitNode(std::int64_t max_in_flight, bool release_after_fetch)
      : max_in_flight_(max_in_flight), release_after_fetch_(release_after_fetch) {}
  std::int64_t max_in_flight() const { return max_in_flight_; }
  bool release_after_fetch() const { return release_after_fetch_; }

 private:
  std::int64_t max_in_flight_;
  bool release_after_fetch_;
};

using NodeFactory = std::function<std::unique_ptr<Node>(const NodeContext&)>;

// A node type, declared as data: the registry, the loader, `sluice describe` and the docs all read it.
struct NodeType {
  std::string name;  // "source.list", "filter", ...
  NodeKind kind = NodeKind::transform;
  std::string summary;  // one line
  std::vector<PortSpec> ports;
  Schema schema;
  NodeFactory factory;
  std::string example;    // a YAML node entry showing typical use
  bool parallel = false;  // transforms: process() may run concurrently (order not kept)
  // Records leave it on their own, without the limit slots of the records they came from, and it
  // drops what it has seen (a frontier). Every cycle of edges must pass through such a node: in any
  // other, records would circle forever, or wait at a limit for slots that their own ancestors hold.
  bool breaks_cycles = false;
  // Sources: a resumed run (settings.state, --resume) starts it from its beginning instead of
  // skipping the records earlier runs finished by their position. For a source whose input says
  // itself what is left to do, and may differ from run to run: a query that leaves out stored rows.
  bool resumes_itself = false;

  const PortSpec* find_port(std::string_view port) const;
  std::vector<std::string> port_names(PortDirection direction) const;
  // Index of an output port among the output ports, or -1.
  int output_index(std::string_view port) const;
};

}  // namespace sluice
