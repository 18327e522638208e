// A method is a recipe: which models it builds (policy, reference, critic, reward), where its
// batches come from (a dataset or on-policy generation), which Algorithm trains them, and what a
// finished run exports. Recipes are created by name from one table, filled by
// register_builtins(); adding a method adds a recipe file and one line there, never an edit of
// the loop.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "algorithms/algorithm.h"
#include "algorithms/batch_source.h"
#include "data/tokenizer.h"
#include "models/causal_lm.h"
#include "proto/rudder.pb.h"

namespace rudder::trainer {

/// What a recipe builds for the loop.
struct Experiment {
  std::shared_ptr<data::Tokenizer> tokenizer;
  std::shared_ptr<models::CausalLM> policy;  // the model that trains (an RM's backbone)
  std::unique_ptr<algorithms::Algorithm> algorithm;
  std::unique_ptr<algorithms::BatchSource> source;
  /// Writes the trained result to a directory (main rank, after a finished run).
  std::function<void(const std::string& dir)> export_final;
};

/// Builds one method's experiment.
struct Recipe {
  /// Builds the models, source and algorithm from a validated config.
  std::function<Experiment(const ExperimentConfig&)> build;
  /// Settings this recipe reads among those that not every method reads (see
  /// optional_settings()); setting any other of them is refused before any work starts.
  std::vector<std::string> uses;
};

/// Recipes by name.
class RecipeRegistry {
 public:
  /// Adds `recipe` as `name`; throws InvalidArgument when the name is taken.
  void add(const std::string& name, Recipe recipe);
  /// The recipe named `name`; throws InvalidArgument listing the known names.
  const Recipe& get(const std::string& name) const;
  std::vector<std::string> names() const;

 private:
  std::map<std::string, Recipe> recipes_;
};

/// Adds sft, reward_model and dpo.
void register_builtins(RecipeRegistry& registry);

/// The process's table, with the built-in recipes registered on first use. Tests and programs
/// that embed Rudder may add their own. Not thread-safe: register before training starts.
RecipeRegistry& recipes();

/// The config's method key ("sft", "dpo", ...), "" when it names none.
std::string method_name(const ExperimentConfig& config);

/// The settings some methods read and others do not, each with what happens when it is set
/// but unused ("" when some method uses it; else why no method does yet).
const std::map<std::string, std::string>& optional_settings();

/// Throws InvalidArgument when the setting at `key` ("data.synthetic") differs from its default:
/// for settings a recipe reads only in some cases, refused in the others (`why`).
void refuse_if_set(const ExperimentConfig& config, const std::string& key, const std::string& why);

/// Throws InvalidArgument naming the first optional setting that differs from its default and
/// that `recipe` does not use (and `origin`, the config's file, when not empty): a key that is
/// set is either used or refused.
void refuse_unused_settings(const ExperimentConfig& config, const std::string& method,
                            const Recipe& recipe, const std::string& origin = "");

}  // namespace rudder::trainer
