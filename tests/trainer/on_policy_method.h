// A test-only on-policy method that trains through the same loop as every method: REINFORCE
// with a per-prompt mean baseline and a k1 KL penalty to a reference that is refreshed from the
// policy at each iteration start. It samples at temperature 1 through an OnPolicySource, scores
// with a rule reward, and takes two epochs x two mini-batches of updates per batch. Its state
// (reference weights, shuffle generator, KL coefficient, iterations seen) lives in checkpoints.
#pragma once

#include <string>

#include "trainer/recipe.h"

namespace rudder::testing {

/// The name the recipe is registered under.
inline constexpr const char* kOnPolicyRecipe = "test_on_policy";

/// Adds the recipe to the process's table (once).
void register_on_policy_recipe();

}  // namespace rudder::testing
