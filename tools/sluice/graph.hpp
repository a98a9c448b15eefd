// `sluice graph`: a pipeline as a Graphviz DOT graph, optionally rendered by the `dot` program.
#pragma once

#include <string>

#include "sluice/pipeline.hpp"

namespace sluice::cli {

// Nodes (id, type and the settings that shape the flow: limits, per-host bounds, on_error), edges
// with their ports, error routes dashed and red.
std::string pipeline_dot(const Plan& plan);

// Renders DOT text with `dot -T<format>` into `out_path` (or stdout when empty). Returns an empty
// string on success, else what went wrong for a person (no `dot` installed, dot's own error).
std::string render_dot(const std::string& dot, const std::string& format, const std::string& out_path);

}  // namespace sluice::cli
