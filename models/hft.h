// Half Fine-Tuning (HFT, Hui et al. 2024): in every transformer block, half of the parameters
// (chosen at random, seeded) are frozen, so training updates only the other half.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "models/causal_lm.h"

namespace rudder::models {

/// Freezes floor(n / 2) of the n parameters of each block, chosen by `seed`, and returns the
/// frozen names (sorted) so a checkpoint can record them. Embeddings, the final norm and the
/// output head stay trainable. The same seed always freezes the same parameters.
std::vector<std::string> apply_hft(CausalLM& model, uint64_t seed);

}  // namespace rudder::models
