// Per-rank state (generators) gathered onto every rank for checkpoints.
#pragma once

#include <string>
#include <vector>

#include "core/distributed.h"
#include "models/safetensors.h"

namespace rudder::trainer::detail {

/// Every rank's `mine`, indexed by rank. All ranks must hold the same names with the same byte
/// sizes (the same code made them). World size 1: {mine}, without communication.
std::vector<models::TensorMap> gather_rank_states(const models::TensorMap& mine,
                                                  core::ProcessGroup& group);

}  // namespace rudder::trainer::detail
