// How often each selector of a parse node found something: the node's "selectors" table, and a
// warning for a selector that found nothing in the whole run. A scraper's most common failure is
// silent: the site changes its markup, a selector matches nothing any more, and the run succeeds
// with no items (or with a column of nulls). This makes it visible at the end of every run, in
// --stats-json, and live in --metrics (sluice_selector_missing_total).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <oneapi/tbb/enumerable_thread_specific.h>

#include "sluice/node.hpp"
#include "sluice/value.hpp"

namespace sluice::parse {

class SelectorStats {
 public:
  struct Row {
    std::string name;    // "items", "links", "next", "fields.price": the option it is
    std::string select;  // the selector or path as the pipeline gives it
    bool per_item;       // tried once per item (a field), else once per page
  };

  // One thread's counts. Only its own thread writes them (a load and a store, no lock), so any thread
  // may read them for the table while they grow.
  class Tally {
   public:
    explicit Tally(std::size_t rows) : cells_(std::make_unique<Cell[]>(rows)) {}
    // The selector of `row` was tried once and gave `values` values (0: it found nothing).
    void add(std::size_t row, std::uint64_t values) {
      Cell& c = cells_[row];
      bump(c.tried, 1);
      if (values > 0) {
        bump(c.found, 1);
        bump(c.values, values);
      }
    }

   private:
    friend class SelectorStats;
    struct Cell {
      std::atomic<std::uint64_t> tried{0}, found{0}, values{0};
    };
    static void bump(std::atomic<std::uint64_t>& a, std::uint64_t n) {
      a.store(a.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    std::unique_ptr<Cell[]> cells_;
  };

  // The rows of a parse node: `items` and the option of its links (`links`, `next`) when its
  // config has them, then each field (name and selector or path), in the pipeline's order.
  SelectorStats(const NodeContext& ctx, const std::string& link_option,
                const std::vector<std::pair<std::string, std::string>>& fields);

  // Where each selector counts: `items` (when the node has it), the links option, field `i`.
  static constexpr std::size_t kItemsRow = 0;
  std::size_t link_row() const { return has_items_ ? 1 : 0; }
  std::size_t field_row(std::size_t i) const { return link_row() + (has_link_ ? 1 : 0) + i; }

  // The calling thread's counts.
  Tally& tally();
  // After each page: gives the table when a second has passed since it was last given.
  void page_done();
  // At the end of the run: gives the table, and a notice for each selector that was tried and never
  // found anything.
  void finish();

  // The table's rows: per selector `selector`, `select`, `tried` (pages, or items for a field),
  // `found` (those where it found something), `missing` (tried - found) and `values`; the largest
  // share missing first, in the pipeline's order otherwise.
  std::vector<Record> rows() const;

 private:
  struct Sum {
    std::uint64_t tried = 0, found = 0, values = 0;
  };
  std::vector<Sum> sums() const;

  bool has_items_, has_link_;
  std::vector<Row> rows_;
  std::function<void(std::string, std::vector<Record>)> table_;
  std::function<void(std::string)> notice_;
  tbb::enumerable_thread_specific<Tally*> local_;  // never iterated: threads register in tallies_
  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<Tally>> tallies_;
  std::atomic<std::int64_t> next_due_{0};  // steady clock, nanoseconds
};

}  // namespace sluice::parse
