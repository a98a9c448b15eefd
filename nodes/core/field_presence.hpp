// Fields a sink writes by name (store.sqlite's columns, the `fields` of sink.csv and sink.jsonl) that
// no record it received had. A name mistyped in the pipeline (`prcie`), or one an upstream node
// calls otherwise, fills a column with nulls and fails nothing; at the end of the run each such field
// is a warning that names the fields the records did have.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "sluice/value.hpp"

namespace sluice::nodes {

class FieldPresence {
 public:
  struct Watched {
    std::string label;  // how the warning names it: "column 'price'", "fields"
    std::string field;  // the record field it is read from
  };

  // `unit` names what a record became ("row", "line"), `blank` what a missing field is there ("null",
  // "empty").
  FieldPresence(std::vector<Watched> watched, std::string unit, std::string blank,
                std::function<void(std::string)> notice)
      : watched_(std::move(watched)),
        present_(watched_.size(), false),
        missing_(watched_.size()),
        unit_(std::move(unit)),
        blank_(std::move(blank)),
        notice_(std::move(notice)) {}

  // The watched list of a sink's `fields`.
  static std::vector<Watched> of_fields(const std::vector<std::string>& fields) {
    std::vector<Watched> watched;
    for (const auto& f : fields) watched.push_back({"fields", f});
    return watched;
  }

  // A record was written. Costs a lookup per watched field only until each has been seen once.
  void see(const Record& r) {
    ++records_;
    if (missing_ == 0) return;
    if (records_ <= kNamesFrom) {
      for (const auto& [name, value] : r.fields()) {
        if (names_.size() < kNamesKept && std::find(names_.begin(), names_.end(), name) == names_.end())
          names_.push_back(name);
      }
    }
    for (std::size_t i = 0; i < watched_.size(); ++i) {
      if (present_[i]) continue;
      const std::string& f = watched_[i].field;
      if (r.get(f) || (f == "_error" && r.error)) {
        present_[i] = true;
        --missing_;
      }
    }
  }

  // At the end of the run (a sink's close()): a notice for each watched field no record had.
  void finish() {
    if (records_ == 0 || missing_ == 0 || !notice_) return;
    constexpr std::size_t kNamesShown = 20;
    std::sort(names_.begin(), names_.end());
    std::string names;
    for (std::size_t i = 0; i < names_.size() && i < kNamesShown; ++i) names += (names.empty() ? "" : ", ") + names_[i];
    if (names_.size() > kNamesShown) names += fmt::format(" and {} more", names_.size() - kNamesShown);
    for (std::size_t i = 0; i < watched_.size(); ++i) {
      if (present_[i]) continue;
      notice_(fmt::format("{}: no record had a field '{}', so it is {} in {} (the records' fields: {})",
                          watched_[i].label, watched_[i].field, blank_,
                          records_ == 1 ? "the one " + unit_ : fmt::format("all {} {}s", records_, unit_),
                          names.empty() ? "none" : names));
    }
    missing_ = 0;  // said once
  }

 private:
  std::vector<Watched> watched_;
  std::vector<bool> present_;
  std::size_t missing_;
  std::string unit_, blank_;
  std::function<void(std::string)> notice_;
  // The names of the fields of the first kNamesFrom records (at most kNamesKept), for the warning.
  static constexpr std::uint64_t kNamesFrom = 100;
  static constexpr std::size_t kNamesKept = 64;
  std::uint64_t records_ = 0;
  std::vector<std::string> names_;
};

}  // namespace sluice::nodes
