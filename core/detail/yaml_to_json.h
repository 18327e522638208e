// The schema-guided YAML -> JSON conversion behind core/config.h.
#pragma once

#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include <google/protobuf/descriptor.h>
#include <yaml-cpp/yaml.h>

namespace rudder::core::detail {

/// Where the YAML came from, for error messages.
struct YamlOrigin {
  std::string name;                  // the file path or another label
  std::set<std::string> overridden;  // key paths set by --set
};

/// Converts a YAML mapping into the proto3 JSON of `descriptor`, checking keys, types, ranges
/// and choices and filling declared defaults. Throws ConfigError.
nlohmann::ordered_json yaml_to_json(const YAML::Node& root,
                                    const google::protobuf::Descriptor* descriptor,
                                    const YamlOrigin& origin);

/// Applies one "key.path=value" override to `root` (a mapping; created when null) and returns
/// the key path. Throws ConfigError.
std::string apply_override(YAML::Node& root, const std::string& assignment);

/// Replaces `${VAR}` / `${VAR:-default}` (and `$${` for a literal `${`) from the environment.
/// Throws ConfigError naming the variable; `where` prefixes the message.
std::string substitute_env(const std::string& text, const std::string& where);

}  // namespace rudder::core::detail
