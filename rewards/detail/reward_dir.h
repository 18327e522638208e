// The reward_config.json of a reward model directory: which kind wrote it and that kind's
// constants. Shared by the reward models that save themselves as a directory.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace rudder::rewards::detail {

/// Writes `config` as `dir`/reward_config.json (through a temporary name, then renamed).
void write_reward_config(const std::string& dir, const nlohmann::json& config);

/// Reads `dir`/reward_config.json; throws NotFound when it is missing, InvalidArgument when it is
/// malformed or its "kind" is not `kind` ("" accepts any kind).
nlohmann::json read_reward_config(const std::string& dir, const std::string& kind);

}  // namespace rudder::rewards::detail
