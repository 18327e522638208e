// The DPO recipe: the policy against a frozen reference (a copy of the starting policy, or
// model.reference_path) on preference rows, with the reference's log-probs of the training pairs
// computed once and cached under output_dir/cache; exports the policy.
#include <filesystem>
#include <iomanip>
#include <sstream>

#include <openssl/evp.h>
#include <torch/torch.h>

#include "algorithms/dpo.h"
#include "core/error.h"
#include "core/log.h"
#include "models/hf_io.h"
#include "models/safetensors.h"
#include "trainer/detail/recipe_support.h"
#include "trainer/detail/recipes.h"

namespace rudder::trainer::detail {
namespace {

// SHA-256 over the reference weights and the tokenized pairs: the key of the log-prob cache.
std::string reference_cache_key(const models::CausalLM& reference,
                                const algorithms::PreferenceRows& rows) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  for (const auto& [name, t] : reference.state_dict()) {
    const at::Tensor c = t.detach().to(torch::kCPU).contiguous();
    EVP_DigestUpdate(ctx.get(), name.data(), name.size());
    EVP_DigestUpdate(ctx.get(), c.data_ptr(), c.nbytes());
  }
  for (const auto* side : {&rows.chosen, &rows.rejected}) {
    for (const auto& r : *side) {
      EVP_DigestUpdate(ctx.get(), r.prompt.data(), r.prompt.size() * sizeof(int64_t));
      EVP_DigestUpdate(ctx.get(), r.response.data(), r.response.size() * sizeof(int64_t));
    }
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), digest, &len);
  std::ostringstream hex;
  for (unsigned int i = 0; i < 8; ++i)
    hex << std::hex << std::setw(2) << std::setfill('0') << static_cast<int>(digest[i]);
  return hex.str();
}

// Reference log-probs of the training pairs, computed once and cached under output_dir/cache
// (reused on resume and by reruns with the same reference and data).
algorithms::ReferenceLogps cached_reference_logps(const ExperimentConfig& c,
                                                  models::CausalLM& reference,
                                                  const algorithms::PreferenceRows& rows,
                                                  int64_t pad_id) {
  const auto dir = std::filesystem::path(c.output_dir()) / "cache";
  const auto path =
      dir / ("reference_logps-" + reference_cache_key(reference, rows) + ".safetensors");
  if (std::filesystem::exists(path)) {
    const auto t = models::load_safetensors(path.string()).tensors;
    RUDDER_CHECK(t.count("chosen") && t.count("rejected") &&
                     t.at("chosen").size(0) == static_cast<int64_t>(rows.size()),
                 path.string(), ": does not hold reference log-probs of ", rows.size(), " pairs");
    RUDDER_LOG(kInfo) << "reference log-probs from " << path.string();
    return {t.at("chosen"), t.at("rejected")};
  }
  RUDDER_LOG(kInfo) << "computing reference log-probs of " << rows.size() << " pairs";
  algorithms::ReferenceLogps logps = algorithms::compute_reference_logps(reference, rows, pad_id);
  std::filesystem::create_directories(dir);
  models::save_safetensors(path.string(), {{"chosen", logps.chosen}, {"rejected", logps.rejected}});
  return logps;
}

}  // namespace

Recipe dpo_recipe() {
  Recipe r;
  r.uses = {"model.reference_path", "data.synthetic.pair_source",
            "data.synthetic.samples_per_prompt", "rollout.endpoints"};
  r.build = [](const ExperimentConfig& config) {
    if (config.dpo().reference_free())
      refuse_if_set(config, "model.reference_path", "dpo.reference_free drops the reference");
    Experiment e = make_base(config);
    std::shared_ptr<models::CausalLM> reference =
        config.model().reference_path().empty()
            ? frozen_copy(*e.policy)
            : models::load_hf_model(config.model().reference_path());
    reference->to(e.policy->parameters().front().device());
    algorithms::PreferenceData data = load_preference_data(config, *e.tokenizer, *e.policy);
    algorithms::ReferenceLogps precomputed;
    if (config.dpo().reference_mode() == "precompute" && !config.dpo().reference_free()) {
      precomputed = cached_reference_logps(config, *reference, data.train, e.tokenizer->pad_id());
    }
    train_policy_on_rows(
        e,
        std::make_unique<algorithms::Dpo>(e.policy, reference, e.tokenizer, std::move(data), config,
                                          std::move(precomputed)),
        config);
    return e;
  };
  return r;
}

}  // namespace rudder::trainer::detail
