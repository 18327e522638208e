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
  EpochSampler full(7, 3, true);
  std::vector<uint64_t> expected;
  for (int i = 0; i < 6; ++i) {
    auto batch = full.next(3);
    expected.insert(expected.end(), batch.begin(), batch.end());
  }
  // Stop after 2 batches (inside epoch 0), then after 7 (on an epoch boundary); resume each time.
  for (const int stop : {2, 7}) {
    EpochSampler first(7, 3, true);
    std::vector<uint64_t> got;
    for (int i = 0; i < stop && i < 6; ++i) {
      auto batch = first.next(3);
      got.insert(got.end(), batch.begin(), batch.end());
    }
    EpochSampler resumed(7, 3, true);
    resumed.set_position(first.position());
    while (got.size() < expected.size()) {
      auto batch = resumed.next(3);
      got.insert(got.end(), batch.begin(), batch.end());
    }
    got.resize(expected.size());
    EXPECT_EQ(got, expected) << "stop " << stop;
  }
  EpochSampler s(5, 1, true);
  EXPECT_THROW(s.set_position({0, 6}), core::InvalidArgument);
  EXPECT_THROW(EpochSampler(0, 1, true), core::InvalidArgument);
}

}  // namespace
}  // namespace rudder::data
