#include "core/config.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <google/protobuf/util/json_util.h>
#include <yaml-cpp/yaml.h>

#include "core/detail/yaml_to_json.h"

namespace rudder::core {
namespace {

YAML::Node parse_yaml(std::string_view text, std::string_view origin) {
  try {
    return YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    std::string where(origin);
    if (e.mark.line >= 0) where += str(":", e.mark.line + 1, ":", e.mark.column + 1);
    throw ConfigError(str("config error: ", where, ": invalid YAML: ", e.msg));
  }
}

YAML::Node json_to_yaml(const nlohmann::ordered_json& j) {
  if (j.is_object()) {
    YAML::Node node(YAML::NodeType::Map);
    for (const auto& [key, value] : j.items()) node[key] = json_to_yaml(value);
    return node;
  }
  if (j.is_array()) {
    YAML::Node node(YAML::NodeType::Sequence);
    for (const auto& value : j) node.push_back(json_to_yaml(value));
    return node;
  }
  if (j.is_string()) return YAML::Node(j.get<std::string>());
  return YAML::Node(j.dump());
}

}  // namespace

void parse_config_text(std::string_view yaml, std::string_view origin,
                       const std::vector<std::string>& overrides, google::protobuf::Message* out) {
  RUDDER_ASSERT(out != nullptr);
  YAML::Node root = parse_yaml(yaml, origin);
  detail::YamlOrigin where{std::string(origin), {}};
  for (const auto& assignment : overrides)
    where.overridden.insert(detail::apply_override(root, assignment));
  const nlohmann::ordered_json j = detail::yaml_to_json(root, out->GetDescriptor(), where);

  std::unique_ptr<google::protobuf::Message> parsed(out->New());
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto status = google::protobuf::util::JsonStringToMessage(j.dump(), parsed.get(), options);
  if (!status.ok()) {
    throw ConfigError(str("config error: ", origin, ": ", status.message()));
  }
  out->CopyFrom(*parsed);
}

void load_config(const std::string& path, const std::vector<std::string>& overrides,
                 google::protobuf::Message* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(str("config error: ", path, ": cannot open: ", std::strerror(errno)));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad())
    throw ConfigError(str("config error: ", path, ": read failed: ", std::strerror(errno)));
  parse_config_text(text.str(), path, overrides, out);
}

ExperimentConfig load_experiment_config(const std::string& path,
                                        const std::vector<std::string>& overrides) {
  ExperimentConfig config;
  load_config(path, overrides, &config);
  return config;
}

std::string config_to_json(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string out;
  const auto status = google::protobuf::util::MessageToJsonString(message, &out, options);
  RUDDER_ASSERT(status.ok(), "printing ", message.GetTypeName(), ": ", status.message());
  return out;
}

std::string config_to_yaml(const google::protobuf::Message& message) {
  const auto j = nlohmann::ordered_json::parse(config_to_json(message));
  YAML::Emitter out;
  out << json_to_yaml(j);
  return std::string(out.c_str()) + "\n";
}

}  // namespace rudder::core
