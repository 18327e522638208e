#include "models/hft.h"

#include <algorithm>
#include <map>
#include <random>

namespace rudder::models {

std::vector<std::string> apply_hft(CausalLM& model, uint64_t seed) {
  // Group parameters by block: "model.layers.<i>." or "transformer.h.<i>.".
  std::map<std::string, std::vector<std::string>> blocks;
  std::map<std::string, at::Tensor> params;
  for (const auto& item : model.named_parameters(true)) {
    const std::string& name = item.key();
    for (const std::string prefix : {"model.layers.", "transformer.h."}) {
      if (name.rfind(prefix, 0) != 0) continue;
      const size_t dot = name.find('.', prefix.size());
      blocks[name.substr(0, dot)].push_back(name);
      params[name] = item.value();
    }
  }
  std::mt19937_64 rng(seed);  // fully specified by the standard: the choice is portable
  std::vector<std::string> frozen;
  for (auto& [block, names] : blocks) {
    std::sort(names.begin(), names.end());
    for (size_t i = names.size() - 1; i > 0; --i) std::swap(names[i], names[rng() % (i + 1)]);
    for (size_t i = 0; i < names.size() / 2; ++i) {
      params[names[i]].set_requires_grad(false);
      frozen.push_back(names[i]);
    }
  }
  std::sort(frozen.begin(), frozen.end());
  return frozen;
}

}  // namespace rudder::models
