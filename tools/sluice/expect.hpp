// `sluice test`: the assertions of a pipeline's `expect:` map, checked after its run.
#pragma once

#include <string>
#include <vector>

#include "sluice/pipeline.hpp"
#include "sluice/run.hpp"

namespace sluice::cli {

struct ExpectResult {
  bool passed = false;
  std::string what;    // "rows of 'products' in shop.db: 12, expected 10..20"
};

// Checks every assertion of plan.expect (and the run's status) against the report and the SQLite
// files the pipeline wrote. Database files are opened read-only.
std::vector<ExpectResult> check_expectations(const Plan& plan, const RunReport& report);

// The first `limit` rows of every store.sqlite table of the plan, as a small text table each.
std::string preview_stores(const Plan& plan, int limit);

}  // namespace sluice::cli
