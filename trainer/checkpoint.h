// Checkpoints: one directory per step, committed atomically, verified on load.
//
//   <dir>/step-00000120/  model.safetensors  optimizer.safetensors  rng.safetensors
//                         state.safetensors (the method's state, "method/<name>", and each
//                         rank's generators, "rank<r>/<name>")
//                         config.yaml  manifest.json (CheckpointManifest, SHA-256 of each file)
//   <dir>/latest          "step-00000120"
//
// Protocol: write into <dir>/.tmp-step-N-<pid>, fsync every file and the directory, rename to
// step-N, fsync <dir>, then replace `latest` the same way. A directory without a valid manifest
// is never resumed from; checkpoints with no valid `latest` are an error, never a fresh start.
#pragma once

#include <cstdint>
#include <string>

#include "data/sampler.h"
#include "models/safetensors.h"
#include "proto/rudder.pb.h"

namespace rudder::trainer {

/// Everything a run needs to continue exactly.
struct CheckpointState {
  uint64_t step = 0;              // optimizer steps completed
  data::SamplerPosition sampler;  // data order position
  models::TensorMap model;        // trainable module's parameters by name
  models::TensorMap optimizer;    // AdamW::state()
  at::Tensor rng_cpu;             // libtorch's CPU generator state (of rank 0)
  models::TensorMap method_state;  // Algorithm::state() and the loop's own counters
  std::vector<models::TensorMap> rank_states;  // per rank: its generators (empty: none saved)
  ExperimentConfig config;        // the resolved config of the run
  uint32_t world_size = 1;
};

/// Writes `state` as <dir>/step-N and points `latest` at it, then removes all but the newest
/// `keep_last` checkpoints (0 keeps all). Returns the checkpoint's path.
std::string save_checkpoint(const std::string& dir, const CheckpointState& state,
                            uint32_t keep_last);

/// Checks one checkpoint directory's manifest, and the size and SHA-256 of every file it lists,
/// without loading tensors; returns the manifest. Throws InvalidArgument naming the bad file.
CheckpointManifest verify_checkpoint(const std::string& path);

/// Loads and verifies one checkpoint directory (sizes and SHA-256 of every file). Throws
/// InvalidArgument naming the file that is missing, truncated or altered.
CheckpointState load_checkpoint(const std::string& path);

/// The checkpoint `--resume auto` continues from: `latest`'s target, or the newest older one
/// that verifies when it does not (logged). "" when `dir` holds no checkpoint at all. Throws when
/// checkpoints exist but `latest` is missing or invalid, or when none verifies.
std::string find_resume_checkpoint(const std::string& dir);

}  // namespace rudder::trainer
