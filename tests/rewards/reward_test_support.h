// Shared by the reward-model tests of this folder: a tiny untrained model and the tokenizer and
// data settings it is scored with.
#pragma once

#include "models/model_spec.h"
#include "proto/rudder.pb.h"
#include "tests/support/tiny_models.h"

namespace rudder::testing {

/// max_length 64, max_prompt_length 32.
inline DataConfig rm_data_config() {
  DataConfig dc;
  dc.set_max_length(64);
  dc.set_max_prompt_length(32);
  return dc;
}

}  // namespace rudder::testing
