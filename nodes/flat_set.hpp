// A set of fixed-size hashes in one open-addressing table (linear probing, doubled when 70% full):
// no allocation per key, 1.4 to 2.9 times the key's size per key. For the sets that grow with a
// crawl (a frontier's seen URLs, distinct's keys), where std::unordered_set spent about 40 bytes
// and an allocation per 8-byte key.
#pragma once

#include <cstdint>
#include <vector>

namespace sluice::nodes {

// Key: a trivially copyable value with == whose value-initialized state (all zero) marks an empty
// slot; a key equal to it is stored as `substitute` instead (for hashes, a collision of two values
// out of 2^64). `bucket_of` gives a key's 64 well-mixed bits.
template <class Key, std::uint64_t (*BucketOf)(const Key&), Key (*Substitute)()>
class FlatHashSet {
 public:
  // False when `key` was there already.
  bool insert(Key key) {
    if (key == Key{}) key = Substitute();
    if ((size_ + 1) * 10 > slots_.size() * 7) grow();
    if (!place(slots_, shift_, key)) return false;
    ++size_;
    return true;
  }
  std::size_t size() const { return size_; }

 private:
  static bool place(std::vector<Key>& slots, unsigned shift, const Key& key) {
    const std::size_t mask = slots.size() - 1;
    // Fibonacci hashing: the top bits of a multiply, so that keys whose low bits agree spread out.
    for (std::size_t i = static_cast<std::size_t>((BucketOf(key) * 0x9E3779B97F4A7C15ull) >> shift);;
         i = (i + 1) & mask) {
      if (slots[i] == key) return false;
      if (slots[i] == Key{}) {
        slots[i] = key;
        return true;
      }
    }
  }
  void grow() {
    const std::size_t size = slots_.empty() ? 1024 : slots_.size() * 2;
    unsigned shift = 64;
    for (std::size_t s = size; s > 1; s >>= 1) --shift;
    std::vector<Key> bigger(size);
    for (const auto& k : slots_) {
      if (!(k == Key{})) place(bigger, shift, k);
    }
    slots_.swap(bigger);
    shift_ = shift;
  }

  std::vector<Key> slots_;  // a power of two
  unsigned shift_ = 64;     // 64 - log2(slots_.size())
  std::size_t size_ = 0;
};

}  // namespace sluice::nodes
