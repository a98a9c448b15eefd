#include "sluice/batch.hpp"

namespace sluice {

PermitRef Gate::acquire() {
  std::unique_lock lock(mutex_);
  cv_.wait(lock, [&] { return closed_ || admitted_ - released_ < capacity_; });
  if (closed_) return nullptr;
  ++admitted_;
  lock.unlock();
  return std::make_shared<const Permit>(*this);
}

void Gate::close() {
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
  }
  cv_.notify_all();
}

void Gate::on_release(std::uint64_t) noexcept {
  {
    std::lock_guard lock(mutex_);
    ++released_;
  }
  cv_.notify_one();
}

std::int64_t Gate::admitted() const {
  std::lock_guard lock(mutex_);
  return admitted_;
}

std::int64_t Gate::released() const {
  std::lock_guard lock(mutex_);
  return released_;
}

bool Gate::saturated() const {
  std::lock_guard lock(mutex_);
  return admitted_ - released_ >= capacity_;
}

}  // namespace sluice
