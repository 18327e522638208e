#include "trainer/schedule.h"

#include <cmath>

#include <gtest/gtest.h>

#include "proto/rudder.pb.h"

namespace rudder::trainer {
namespace {

// The expected values below are written out by hand from the definitions (transformers'
// get_linear_schedule_with_warmup and get_cosine_schedule_with_warmup, with a floor), not from
// the formula under test: 4 warmup steps, 20 in all, so decay runs over steps 4..20 and
// step 4 + 16p is at fraction p of it.
ScheduleConfig schedule(const char* kind, double min_lr_ratio) {
  ScheduleConfig s;
  s.set_kind(kind);
  s.set_warmup_steps(4);
  s.set_min_lr_ratio(min_lr_ratio);
  return s;
}

constexpr double kTol = 1e-12;
const double kHalfRoot2 = std::sqrt(0.5);  // cos(pi/4)

TEST(Schedule, CosineFollowsHalfACosineWave) {
  const ScheduleConfig s = schedule("cosine", 0.0);
  EXPECT_NEAR(learning_rate(s, 1.0, 4, 20), 1.0, kTol);
  // p = 1/4: (1 + cos(pi/4)) / 2; linear would give 0.75.
  EXPECT_NEAR(learning_rate(s, 1.0, 8, 20), (1 + kHalfRoot2) / 2, kTol);  // 0.853553...
  EXPECT_NEAR(learning_rate(s, 1.0, 12, 20), 0.5, kTol);
  // p = 3/4: (1 - cos(pi/4)) / 2; linear would give 0.25.
  EXPECT_NEAR(learning_rate(s, 1.0, 16, 20), (1 - kHalfRoot2) / 2, kTol);  // 0.146447...
  // p = 1/8: (1 + cos(pi/8)) / 2, cos(pi/8) = sqrt(2 + sqrt 2) / 2.
  EXPECT_NEAR(learning_rate(s, 1.0, 6, 20), (1 + std::sqrt(2 + std::sqrt(2.0)) / 2) / 2, kTol);
  EXPECT_NEAR(learning_rate(s, 1.0, 20, 20), 0.0, kTol);
}

TEST(Schedule, LinearFallsInAStraightLine) {
  const ScheduleConfig s = schedule("linear", 0.0);
  EXPECT_NEAR(learning_rate(s, 1.0, 8, 20), 0.75, kTol);
  EXPECT_NEAR(learning_rate(s, 1.0, 12, 20), 0.5, kTol);
  EXPECT_NEAR(learning_rate(s, 1.0, 16, 20), 0.25, kTol);
  EXPECT_NEAR(learning_rate(s, 1.0, 6, 20), 0.875, kTol);
  EXPECT_NEAR(learning_rate(s, 1.0, 20, 20), 0.0, kTol);
}

TEST(Schedule, FloorAndPeakScaleTheShape) {
  // lr = peak * (floor + (1 - floor) * shape), floor 0.1, peak 3e-4.
  const double peak = 3e-4;
  EXPECT_NEAR(learning_rate(schedule("cosine", 0.1), peak, 8, 20),
              peak * (0.1 + 0.9 * (1 + kHalfRoot2) / 2), kTol);
  EXPECT_NEAR(learning_rate(schedule("linear", 0.1), peak, 8, 20), peak * (0.1 + 0.9 * 0.75), kTol);
  EXPECT_NEAR(learning_rate(schedule("cosine", 0.1), peak, 20, 20), peak * 0.1, kTol);
  EXPECT_NEAR(learning_rate(schedule("linear", 0.1), peak, 20, 20), peak * 0.1, kTol);
  // Past the last step the rate stays at the floor.
  EXPECT_NEAR(learning_rate(schedule("cosine", 0.1), peak, 25, 20), peak * 0.1, kTol);
}

TEST(Schedule, WarmupRisesLinearlyThenConstantHolds) {
  // Warmup step k of 4 gives (k + 1) / 5 of the peak, whatever the kind.
  for (const char* kind : {"constant", "linear", "cosine"}) {
    const ScheduleConfig s = schedule(kind, 0.1);
    EXPECT_NEAR(learning_rate(s, 2.0, 0, 20), 0.4, kTol) << kind;
    EXPECT_NEAR(learning_rate(s, 2.0, 3, 20), 1.6, kTol) << kind;
  }
  const ScheduleConfig constant = schedule("constant", 0.1);
  EXPECT_EQ(learning_rate(constant, 2.0, 8, 20), 2.0);
  EXPECT_EQ(learning_rate(constant, 2.0, 20, 20), 2.0);
}

}  // namespace
}  // namespace rudder::trainer
