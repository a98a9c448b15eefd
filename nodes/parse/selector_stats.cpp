#include "selector_stats.hpp"

#include <algorithm>
#include <numeric>

#include <fmt/format.h>

namespace sluice::parse {

namespace {

constexpr std::chrono::seconds kLiveEvery{1};

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

SelectorStats::SelectorStats(const NodeContext& ctx, const std::string& link_option,
                             const std::vector<std::pair<std::string, std::string>>& fields)
    : has_items_(ctx.config.has("items")),
      has_link_(ctx.config.has(link_option)),
      table_(ctx.table),
      notice_(ctx.notice) {
  if (has_items_) rows_.push_back({"items", ctx.config.string("items"), false});
  if (has_link_) rows_.push_back({link_option, ctx.config.string(link_option), false});
  for (const auto& [name, select] : fields) rows_.push_back({"fields." + name, select, has_items_});
}

SelectorStats::Tally& SelectorStats::tally() {
  bool exists = false;
  Tally*& mine = local_.local(exists);
  if (!exists || !mine) {
    std::lock_guard lock(mutex_);
    tallies_.push_back(std::make_unique<Tally>(rows_.size()));
    mine = tallies_.back().get();
  }
  return *mine;
}

std::vector<SelectorStats::Sum> SelectorStats::sums() const {
  std::vector<Sum> sums(rows_.size());
  std::lock_guard lock(mutex_);
  for (const auto& t : tallies_) {
    for (std::size_t r = 0; r < rows_.size(); ++r) {
      sums[r].tried += t->cells_[r].tried.load(std::memory_order_relaxed);
      sums[r].found += t->cells_[r].found.load(std::memory_order_relaxed);
      sums[r].values += t->cells_[r].values.load(std::memory_order_relaxed);
    }
  }
  return sums;
}

std::vector<Record> SelectorStats::rows() const {
  const std::vector<Sum> sums = this->sums();
  std::vector<std::size_t> order(rows_.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  // The largest share missing first.
  auto missing_share = [&](std::size_t r) {
    return sums[r].tried == 0 ? 0.0
                              : static_cast<double>(sums[r].tried - sums[r].found) / static_cast<double>(sums[r].tried);
  };
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return missing_share(a) > missing_share(b); });
  std::vector<Record> out;
  out.reserve(rows_.size());
  for (std::size_t r : order) {
    const Sum& s = sums[r];
    Record row;
    row.append("selector", Value(rows_[r].name));
    row.append("select", Value(rows_[r].select));
    row.append("tried", Value(static_cast<std::int64_t>(s.tried)));
    row.append("found", Value(static_cast<std::int64_t>(s.found)));
    row.append("missing", Value(static_cast<std::int64_t>(s.tried - s.found)));
    row.append("values", Value(static_cast<std::int64_t>(s.values)));
    out.push_back(std::move(row));
  }
  return out;
}

void SelectorStats::page_done() {
  if (rows_.empty() || !table_) return;
  const std::int64_t now = now_ns();
  std::int64_t due = next_due_.load(std::memory_order_relaxed);
  if (now < due) return;
  if (!next_due_.compare_exchange_strong(due, now + std::chrono::nanoseconds(kLiveEvery).count())) return;
  table_("selectors", rows());
}

void SelectorStats::finish() {
  if (rows_.empty()) return;
  if (table_) table_("selectors", rows());
  if (!notice_) return;
  const std::vector<Sum> sums = this->sums();
  for (std::size_t r = 0; r < rows_.size(); ++r) {
    const Sum& s = sums[r];
    if (s.tried == 0 || s.found > 0) continue;
    const char* unit = rows_[r].per_item ? "item" : "page";
    notice_(fmt::format("'{}: {}' found nothing in {}", rows_[r].name, rows_[r].select,
                        s.tried == 1 ? fmt::format("the one {} it was tried on", unit)
                                     : fmt::format("any of the {} {}s it was tried on", s.tried, unit)));
  }
}

}  // namespace sluice::parse
