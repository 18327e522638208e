// Best-of-N selection and win rate (ALGORITHMS.md section 10).
#pragma once

#include <cstddef>
#include <vector>

namespace rudder::rollout {

/// (1/n) sum 1{a_i > b_i} + 0.5 1{a_i = b_i}. Throws InvalidArgument for unequal or empty inputs.
double win_rate(const std::vector<double>& a, const std::vector<double>& b);

/// Index of the best (or, with `worst`, the worst) score; ties go to the first index.
size_t best_of_n(const std::vector<double>& scores, bool worst = false);

}  // namespace rudder::rollout
