// Guided decoding from configuration: the guidance processors `rollout.decoder` asks for, loaded
// from their directories, and the file beside a class-conditional LM that GeDi needs.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "rollout/logits_processors.h"

namespace rudder {
class RolloutConfig;
}
namespace rudder::models {
struct ModelSpec;
}

namespace rudder::rollout {

/// gedi_config.json of a class-conditional LM directory: its control codes and logit scale.
struct GediCodes {
  std::string desired_text;
  std::string anti_text;
  int64_t desired_code = -1;
  int64_t anti_code = -1;
  double logit_scale = 1.0;
};

/// Writes gedi_config.json into `dir` (created) atomically.
void write_gedi_codes(const std::string& dir, const GediCodes& codes);

/// Reads gedi_config.json of `dir`; throws NotFound when it is missing and InvalidArgument,
/// naming the file, when it is malformed.
GediCodes read_gedi_codes(const std::string& dir);

/// The guidance processors of an engine and the longest sequence they can follow.
struct Guidance {
  std::vector<std::shared_ptr<LogitsProcessor>> processors;
  int64_t max_length = 0;  // for LocalEngineOptions::max_length
};

/// The guidance processors of `config.decoder` for an engine of `slots` rows over a policy of
/// sizes `policy`: none for `sample`; GenARM's ARMs from `genarm.arm_paths`; GeDi's CC-LM from
/// `gedi.cclm_path` (which reads a control code before each row). `max_length`: the engine's
/// longest sequence, or 0 for the longest the policy and every guidance model can hold. Throws
/// InvalidArgument naming the setting for a missing directory, a vocabulary unlike the policy's,
/// weights that do not match the ARMs, a max_length a guidance model cannot hold, or decoder
/// `best_of_n` (a reward model choosing among samples is not a processor:
/// rollout::best_of_n_decode does it).
Guidance make_guidance(const RolloutConfig& config, const models::ModelSpec& policy, int64_t slots,
                       int64_t max_length);

}  // namespace rudder::rollout
