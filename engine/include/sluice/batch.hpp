// Batches: the unit that travels on graph edges.
#pragma once

#include <memory>
#include <vector>

#include "sluice/permit.hpp"
#include "sluice/value.hpp"

namespace sluice {

// A group of records moving together along an edge. Every message on an edge is owned by its
// receiver alone (the engine copies batches for fan-out), so a node may modify it in place.
struct Batch {
  std::vector<Record> records;
  // Permits held by this batch; derived batches share them, so capacity returns only when every
  // batch derived from a source batch is gone.
  std::vector<PermitRef> tickets;

  // An empty batch that shares this batch's tickets.
  std::shared_ptr<Batch> derive() const {
    auto b = std::make_shared<Batch>();
    b->tickets = tickets;
    return b;
  }
};
using Message = std::shared_ptr<Batch>;

}  // namespace sluice
