// Seeded, resumable data order: epoch e visits the examples in a permutation fixed by
// (seed, e), so a position (epoch, index) is all a checkpoint needs to continue exactly.
#pragma once

#include <cstdint>
#include <vector>

namespace rudder::data {

/// Where a sampler is.
struct SamplerPosition {
  uint64_t epoch = 0;
  uint64_t index = 0;  // examples of this epoch already handed out (over all ranks)
};

/// Hands out batches of example indices, epoch after epoch.
class EpochSampler {
 public:
  /// `size` examples; with `shuffle`, each epoch is a seeded permutation.
  EpochSampler(uint64_t size, uint64_t seed, bool shuffle);

  /// The next `count` indices; an epoch boundary inside the batch continues into the next
  /// epoch's order.
  std::vector<uint64_t> next(uint64_t count);

  /// The order of epoch `epoch`.
  std::vector<uint64_t> epoch_order(uint64_t epoch) const;

  SamplerPosition position() const { return position_; }
  void set_position(SamplerPosition position);
  uint64_t size() const { return size_; }

 private:
  uint64_t size_;
  uint64_t seed_;
  bool shuffle_;
  SamplerPosition position_;
  std::vector<uint64_t> order_;  // of position_.epoch
};

/// SplitMix64 (Steele et al. 2014): a small, portable, well-mixed 64-bit generator.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next();
  /// Uniform in [0, bound) by rejection (no modulo bias); bound > 0.
  uint64_t below(uint64_t bound);
  /// Uniform in [0, 1).
  double uniform();

 private:
  uint64_t state_;
};

}  // namespace rudder::data
