// Loading a pipeline: YAML text -> spec -> validated Plan. A Plan is a description only; running it
// is run.hpp's business.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "sluice/diagnostics.hpp"
#include "sluice/node.hpp"
#include "sluice/registry.hpp"
#include "sluice/schema.hpp"
#include "sluice/spec.hpp"

namespace sluice {

// Pipeline-wide settings (the `settings:` map; `--set key=value` overrides them).
struct PipelineSettings {
  std::string name;               // the `pipeline:` key, else the file name without extension
  std::int64_t batch = 256;       // records per batch a source emits
  std::int64_t max_pending = 16;  // batches per source in flight before the source waits
  std::int64_t threads = 0;       // TBB worker threads (0: one per core)
  std::chrono::nanoseconds shutdown_timeout = std::chrono::seconds(10);
  std::optional<std::chrono::nanoseconds> max_duration;  // graceful stop after this long
  std::int64_t max_items = 0;  // graceful stop once sinks received this many records (0: none)
  std::string state;           // progress file of a resumable run (empty: none); see state.hpp
  std::string serve;           // a folder the runner serves on a free loopback port (${SERVE_URL})
  // How long cancelled work may take to end; then the run stops waiting for a node stuck in its
  // own code (sinks still commit what they received).
  std::chrono::nanoseconds abort_timeout = std::chrono::seconds(5);
  // Records that may fail in nodes that skip or route them before the run stops gracefully and
  // fails (none: no bound). Last, so that plugins built against the previous layout still read the
  // fields above.
  std::optional<std::int64_t> max_errors;
};

// The schema of `settings:`, shared with `sluice describe` and docs.
const Schema& settings_schema();
// The schema of `expect:`, the assertions `sluice test` checks after a run.
const Schema& expect_schema();
// A count or a range: "12", "10..20", "10..", "..20". False when `text` is none of these.
bool parse_count_range(std::string_view text, std::int64_t& low, std::int64_t& high);

struct PlanNode {
  std::string id;
  const NodeType* type = nullptr;  // owned by the Registry, which must outlive the Plan
  Config config;
  OnError on_error = OnError::fail;
  Location where;
};

// A resolved edge between an output port and an input port.
struct PlanEdge {
  std::size_t from_node = 0;
  std::string from_port;
  std::size_t to_node = 0;
  std::string to_port;
  Location where;
};

// A validated pipeline: every node type known, every config typed, every edge resolved.
struct Plan {
  std::string file;
  PipelineSettings settings;
  std::vector<PlanNode> nodes;
  std::vector<PlanEdge> edges;
  std::vector<std::string> plugins;  // `plugins:` as written (load them with load_pipeline_plugins)
  std::optional<Config> expect;      // `expect:`, validated against expect_schema()
};

struct LoadOptions {
  // `--set key=value` overrides for settings, and `--set id.key=value` for a node's config (key may
  // be a path into nested maps; a value starting with [ or { is a YAML flow list or map), applied
  // after ${VAR} substitution.
  std::vector<std::pair<std::string, std::string>> overrides;
  EnvLookup env = process_env();
};

// Validates a pipeline and returns its plan, or nullopt with every error in `diags` (sorted by
// position). `file` is the name used in messages.
std::optional<Plan> load_pipeline_text(std::string_view text, const std::string& file, const Registry& registry,
                                       const LoadOptions& options, Diagnostics& diags);
// The text of pipeline file `path`, or nullopt with the reason in `diags`: unreadable, a directory,
// or larger than a pipeline can be (4 MiB: /dev/zero is not read until memory runs out).
std::optional<std::string> read_pipeline_file(const std::string& path, Diagnostics& diags);
// Reads `path` and calls load_pipeline_text; an unreadable file is a diagnostic too.
std::optional<Plan> load_pipeline_file(const std::string& path, const Registry& registry, const LoadOptions& options,
                                       Diagnostics& diags);

}  // namespace sluice
