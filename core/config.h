// Configuration: YAML -> JSON -> protobuf message, strictly.
//
// Every key is checked against the message's schema before anything runs: unknown keys, wrong
// types, values out of the range or outside the choices declared in the proto's `rules` option,
// and unset environment variables are errors that name the file, the line, the key path and
// what was expected, in one line. Absent keys take the default declared in the proto, so the
// resolved config is complete and can be printed, stored in checkpoints and loaded again.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "proto/rudder.pb.h"

namespace rudder::core {

/// A configuration that cannot be loaded; `what()` is one line naming file, key path and cause.
class ConfigError : public InvalidArgument {
 public:
  using InvalidArgument::InvalidArgument;
};

/// Loads the YAML file `path` into `out`, after applying `overrides` ("key.path=value", the
/// value read as YAML). `${VAR}` and `${VAR:-default}` in values are replaced from the
/// environment. Throws ConfigError; `out` is left untouched on error.
void load_config(const std::string& path, const std::vector<std::string>& overrides,
                 google::protobuf::Message* out);

/// Same as load_config for YAML text; `origin` names the text in error messages.
void parse_config_text(std::string_view yaml, std::string_view origin,
                       const std::vector<std::string>& overrides, google::protobuf::Message* out);

/// Loads an experiment configuration file (see load_config).
ExperimentConfig load_experiment_config(const std::string& path,
                                        const std::vector<std::string>& overrides = {});

/// The message as YAML with every field present (the resolved config).
std::string config_to_yaml(const google::protobuf::Message& message);

/// The message as indented JSON (proto3 mapping, field names as in the proto).
std::string config_to_json(const google::protobuf::Message& message);

}  // namespace rudder::core
