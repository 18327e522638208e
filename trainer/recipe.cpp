#include "trainer/recipe.h"

#include <algorithm>

#include <google/protobuf/descriptor.h>

#include "core/config.h"
#include "core/error.h"

namespace rudder::trainer {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

// The serialized value of the field at `path` ("rollout.sampling") of `config`.
std::string value_at(const Message& config, const std::string& path) {
  const Message* message = &config;
  size_t begin = 0;
  while (true) {
    const size_t dot = path.find('.', begin);
    const std::string name = path.substr(begin, dot == std::string::npos ? dot : dot - begin);
    const FieldDescriptor* field = message->GetDescriptor()->FindFieldByName(name);
    RUDDER_ASSERT(field != nullptr, "no config field '", path, "'");
    if (dot == std::string::npos) {
      std::unique_ptr<Message> only(message->New());
      only->CopyFrom(*message);
      const auto* descriptor = only->GetDescriptor();
      for (int i = 0; i < descriptor->field_count(); ++i) {
        if (descriptor->field(i) != field)
          only->GetReflection()->ClearField(only.get(), descriptor->field(i));
      }
      return only->SerializeAsString();
    }
    RUDDER_ASSERT(field->type() == FieldDescriptor::TYPE_MESSAGE && !field->is_repeated());
    message = &message->GetReflection()->GetMessage(*message, field);
    begin = dot + 1;
  }
}

const ExperimentConfig& default_config() {
  static const ExperimentConfig defaults = [] {
    ExperimentConfig c;
    core::parse_config_text("", "defaults", {}, &c);
    return c;
  }();
  return defaults;
}

}  // namespace

void RecipeRegistry::add(const std::string& name, Recipe recipe) {
  RUDDER_CHECK(!name.empty(), "a recipe needs a name");
  RUDDER_CHECK(recipe.build != nullptr, "recipe '", name, "' has no build function");
  for (const auto& key : recipe.uses) {
    RUDDER_CHECK(optional_settings().count(key), "recipe '", name, "' uses '", key,
                 "', which is not an optional setting");
  }
  const bool added = recipes_.emplace(name, std::move(recipe)).second;
  RUDDER_CHECK(added, "a recipe named '", name, "' is already registered");
}

const Recipe& RecipeRegistry::get(const std::string& name) const {
  const auto it = recipes_.find(name);
  if (it != recipes_.end()) return it->second;
  std::string known;
  for (const auto& n : names()) known += (known.empty() ? "" : ", ") + n;
  throw core::InvalidArgument(
      core::str("method '", name, "' is not implemented yet (implemented: ", known, ")"));
}

std::vector<std::string> RecipeRegistry::names() const {
  std::vector<std::string> out;
  for (const auto& [name, recipe] : recipes_) out.push_back(name);
  return out;
}

RecipeRegistry& recipes() {
  static RecipeRegistry* registry = [] {
    auto* r = new RecipeRegistry();
    register_builtins(*r);
    return r;
  }();
  return *registry;
}

std::string method_name(const ExperimentConfig& config) {
  if (config.method_case() == ExperimentConfig::METHOD_NOT_SET) return "";
  return ExperimentConfig::descriptor()->FindFieldByNumber(config.method_case())->name();
}

const std::map<std::string, std::string>& optional_settings() {
  static const std::map<std::string, std::string> settings = {
      {"model.reference_path", ""},
      {"data.synthetic.pair_source", ""},
      {"data.synthetic.samples_per_prompt", ""},
      {"data.format",
       "no loader reads it yet (each line's format is detected from its keys); leave it auto"},
      {"rollout.sampling", ""},
      {"rollout.sampling.seed",
       "per-request sampling seeds are not implemented yet (the experiment seed seeds sampling)"},
      {"eval.sampling.seed",
       "per-request sampling seeds are not implemented yet (the experiment seed seeds sampling)"},
      {"rollout.endpoints", "only methods that train a policy push it to rollout servers"},
      {"rollout.decoder", "only `rudder generate` and `rudder serve rollout` decode with it"},
      {"rollout.genarm", "only `rudder generate` and `rudder serve rollout` decode with it"},
      {"rollout.gedi", "only `rudder generate` and `rudder serve rollout` decode with it"},
      {"rollout.best_of_n", "best-of-N decoding is not implemented yet"},
      {"reward.endpoints", "no method scores on reward servers yet"},
      {"reward.request_timeout_ms", "no method scores on reward servers yet"},
      {"reward.max_retries", "no method scores on reward servers yet"},
      {"reward.retry_backoff_ms", "no method scores on reward servers yet"},
      {"reward.endpoint_cooldown_ms", "no method scores on reward servers yet"},
      {"reward.max_items_per_request", "no method scores on reward servers yet"},
      {"reward.token_env", "no method scores on reward servers yet"},
      {"reward.model_path", "training against a learned reward model is not implemented yet"},
      {"reward.sources", "training against a learned reward model is not implemented yet"},
      {"reward.calibration", "training against a learned reward model is not implemented yet"},
      {"server", "only the `rudder serve` commands read it"},
      {"reward_server", "only `rudder serve reward` reads it"},
      {"rollout_server", "only `rudder serve rollout` reads it"},
  };
  return settings;
}

void refuse_if_set(const ExperimentConfig& config, const std::string& key, const std::string& why) {
  if (value_at(config, key) == value_at(default_config(), key)) return;
  throw core::InvalidArgument(
      core::str("config error: ", key, " is set, but it is not used: ", why, "; remove it"));
}

void refuse_unused_settings(const ExperimentConfig& config, const std::string& method,
                            const Recipe& recipe, const std::string& origin) {
  for (const auto& [key, reason] : optional_settings()) {
    if (std::find(recipe.uses.begin(), recipe.uses.end(), key) != recipe.uses.end()) continue;
    if (value_at(config, key) == value_at(default_config(), key)) continue;
    throw core::InvalidArgument(core::str(
        "config error: ", origin.empty() ? "" : origin + ": ", key, " is set, but method '", method,
        "' does not use it", reason.empty() ? std::string() : ": " + reason, "; remove it"));
  }
}

}  // namespace rudder::trainer
