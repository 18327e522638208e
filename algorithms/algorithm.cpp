#include "algorithms/algorithm.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "models/autocast.h"

namespace rudder::algorithms {

std::vector<std::vector<size_t>> Algorithm::plan_updates(const Batch& batch) {
  std::vector<size_t> all(batch.size());
  std::iota(all.begin(), all.end(), size_t{0});
  return {all};
}

std::vector<std::vector<size_t>> Algorithm::updates(const Batch& batch) {
  auto plan = plan_updates(batch);
  RUDDER_CHECK_T(core::InternalError, plan.size() == updates_per_batch(), name(), ": planned ",
                 plan.size(), " updates for a batch, updates_per_batch() says ",
                 updates_per_batch());
  for (const auto& update : plan) {
    for (size_t item : update) {
      RUDDER_CHECK_T(core::InternalError, item < batch.size(), name(), ": an update names item ",
                     item, " of a batch of ", batch.size());
    }
  }
  return plan;
}

StepStats Algorithm::train_micro_batch(const Batch& batch, const std::vector<size_t>& items,
                                       double total_units) {
  const double declared = units(batch, items);
  StepStats stats = forward_backward(batch, items, total_units);
  // Integral units (tokens, pairs) must match exactly; fractional ones within rounding.
  const bool integral = declared == std::floor(declared);
  const bool same = integral ? stats.units == declared
                             : std::abs(stats.units - declared) <= 1e-6 * (1 + declared);
  RUDDER_CHECK_T(core::InternalError, same, name(), ": a micro-batch of ", items.size(),
                 " items reported ", stats.units, " loss units, units() declared ", declared,
                 "; exact averaging over ranks needs them equal");
  const auto names = metric_names();
  for (const auto& [metric, value] : stats.sums) {
    RUDDER_CHECK_T(core::InternalError,
                   std::find(names.begin(), names.end(), metric) != names.end(), name(),
                   ": reports metric '", metric, "', which metric_names() does not declare");
  }
  return stats;
}

void backward(const at::Tensor& loss) {
  models::NoAutocastGuard no_autocast;
  loss.backward();
}

std::vector<uint64_t> DatasetAlgorithm::rows_of(const Batch& batch,
                                                const std::vector<size_t>& items) {
  std::vector<uint64_t> rows;
  rows.reserve(items.size());
  for (size_t i : items) rows.push_back(batch.examples.at(i));
  return rows;
}

}  // namespace rudder::algorithms
