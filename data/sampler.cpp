#include "data/sampler.h"

#include <numeric>

#include "core/error.h"

namespace rudder::data {

uint64_t SplitMix64::next() {
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t SplitMix64::below(uint64_t bound) {
  const uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
  uint64_t x;
  do {
    x = next();
  } while (x >= limit);
  return x % bound;
}

double SplitMix64::uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

EpochSampler::EpochSampler(uint64_t size, uint64_t seed, bool shuffle)
    : size_(size), seed_(seed), shuffle_(shuffle) {
  RUDDER_CHECK(size > 0, "cannot sample from an empty dataset");
  order_ = epoch_order(0);
}

std::vector<uint64_t> EpochSampler::epoch_order(uint64_t epoch) const {
  std::vector<uint64_t> order(size_);
  std::iota(order.begin(), order.end(), 0);
  if (!shuffle_) return order;
  SplitMix64 rng(seed_ * 0x9E3779B97F4A7C15ull + epoch + 1);
  for (uint64_t i = size_ - 1; i > 0; --i)
    std::swap(order[i], order[rng.below(i + 1)]);  // Fisher-Yates
  return order;
}

std::vector<uint64_t> EpochSampler::next(uint64_t count) {
  std::vector<uint64_t> out;
  out.reserve(count);
  while (out.size() < count) {
    if (position_.index == size_) {
      ++position_.epoch;
      position_.index = 0;
      order_ = epoch_order(position_.epoch);
    }
    out.push_back(order_[position_.index++]);
  }
  return out;
}

void EpochSampler::set_position(SamplerPosition position) {
  RUDDER_CHECK(position.index <= size_, "sampler position ", position.index,
               " beyond the dataset's ", size_, " examples (did the dataset change?)");
  position_ = position;
  order_ = epoch_order(position_.epoch);
}

}  // namespace rudder::data
