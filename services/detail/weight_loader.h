// Weight updates of the rollout server, read and checked off the worker (it keeps decoding
// meanwhile): the version rule, the SHA-256, the file and its sizes.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "models/model_spec.h"
#include "proto/rudder.pb.h"

namespace rudder::models {
class DecoderWeights;
}

namespace rudder::services::detail {

/// The number a weight version stands for; nothing when it is not a decimal integer.
std::optional<uint64_t> parse_version(const std::string& version);

/// New weights, ready to swap in.
struct LoadedWeights {
  std::shared_ptr<const models::DecoderWeights> weights;
  std::string sha256;  // of the file that was loaded
};

/// Checks `update`'s SHA-256 against its file, loads it and checks its sizes against `served`,
/// and snapshots it on `device`. Throws NotFound for a missing path or file, InvalidArgument
/// for an unreadable path, one that is not a model directory or a regular .safetensors file
/// (through links too), a malformed or wrong SHA-256, a file that does not load, or other sizes.
/// Messages name the path and what is wrong, and quote nothing of the files: not the digest
/// they have, nor why they do not load (that goes to the server's log).
LoadedWeights load_weight_update(const WeightUpdate& update, const models::ModelSpec& served,
                                 const std::string& device);

}  // namespace rudder::services::detail
