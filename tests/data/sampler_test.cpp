#include "data/sampler.h"

#include <algorithm>
#include <set>

#include <gtest/gtest.h>

#include "core/error.h"

namespace rudder::data {
namespace {

TEST(Sampler, EpochsArePermutationsFixedBySeed) {
  EpochSampler a(10, 7, true), b(10, 7, true), c(10, 8, true);
  const auto order = a.epoch_order(0);
  EXPECT_EQ(std::set<uint64_t>(order.begin(), order.end()).size(), 10u);
  EXPECT_EQ(order, b.epoch_order(0));
  EXPECT_NE(order, c.epoch_order(0));
  EXPECT_NE(order, a.epoch_order(1));
  EpochSampler plain(4, 7, false);
  EXPECT_EQ(plain.next(6), (std::vector<uint64_t>{0, 1, 2, 3, 0, 1}));
}

TEST(Sampler, ResumingFromAPositionContinuesExactly) {
  // 7 examples in batches of 3: batch 3 crosses the first epoch boundary, and after 7 batches
  // (21 = 3 x 7 examples) the sampler stands exactly on one.
  constexpr int kBatches = 12;
  EpochSampler full(7, 3, true);
  std::vector<uint64_t> expected;
  for (int i = 0; i < kBatches; ++i) {
    auto batch = full.next(3);
    expected.insert(expected.end(), batch.begin(), batch.end());
  }
  for (const int stop : {2, 3, 7}) {
    EpochSampler first(7, 3, true);
    std::vector<uint64_t> got;
    for (int i = 0; i < stop; ++i) {
      auto batch = first.next(3);
      got.insert(got.end(), batch.begin(), batch.end());
    }
    const SamplerPosition at = first.position();
    if (stop == 7) {
      EXPECT_EQ(at.epoch, 2u);
      EXPECT_EQ(at.index, 7u) << "expected to stop on the boundary of epoch 2";
    }
    EpochSampler resumed(7, 3, true);
    resumed.set_position(at);
    for (int i = stop; i < kBatches; ++i) {
      auto batch = resumed.next(3);
      got.insert(got.end(), batch.begin(), batch.end());
    }
    EXPECT_EQ(got, expected) << "resumed after " << stop << " batches at (epoch " << at.epoch
                             << ", index " << at.index << ")";
  }
  // The position after the boundary, (epoch 3, index 0), is the same place.
  EpochSampler after_boundary(7, 3, true);
  after_boundary.set_position({3, 0});
  const std::vector<uint64_t> tail(expected.begin() + 21, expected.begin() + 24);
  EXPECT_EQ(after_boundary.next(3), tail);
  EpochSampler s(5, 1, true);
  EXPECT_THROW(s.set_position({0, 6}), core::InvalidArgument);
  EXPECT_THROW(EpochSampler(0, 1, true), core::InvalidArgument);
}

}  // namespace
}  // namespace rudder::data
