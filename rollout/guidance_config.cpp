#include "rollout/guidance_config.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "models/causal_lm.h"
#include "models/decoder.h"
#include "models/hf_io.h"
#include "models/model_spec.h"
#include "proto/rudder.pb.h"
#include "rollout/guided_decoding.h"

namespace rudder::rollout {
namespace {

namespace fs = std::filesystem;

constexpr const char* kGediFile = "gedi_config.json";

// The model of `dir` (a directory named by `setting`) as decoder weights.
std::shared_ptr<const models::DecoderWeights> load_weights(const std::string& dir,
                                                           const std::string& setting,
                                                           int64_t policy_vocab) {
  RUDDER_CHECK(!dir.empty(), "rollout.", setting, " is empty");
  RUDDER_CHECK(fs::is_directory(dir), "rollout.", setting, ": '", dir, "' is not a directory");
  const auto model = models::load_hf_model(dir);
  const int64_t vocab = model->spec().vocab_size;
  RUDDER_CHECK(vocab == policy_vocab, "rollout.", setting, ": the model of '", dir,
               "' has a vocabulary of ", vocab, " tokens, the policy ", policy_vocab,
               " (guidance needs the same tokenizer)");
  return std::make_shared<const models::DecoderWeights>(*model);
}

// The engine's max_length: `wanted`, or (0) the longest every model holds; `capacity` is the
// longest sequence the guidance model of `setting` can follow.
int64_t fit_length(int64_t wanted, int64_t current, int64_t capacity, const std::string& setting) {
  if (wanted == 0) return std::min(current, capacity);
  RUDDER_CHECK(wanted <= capacity, "rollout_server.max_length is ", wanted,
               ", but the model of rollout.", setting, " follows sequences of at most ", capacity,
               " tokens; lower rollout_server.max_length (0 picks the longest that fits)");
  return wanted;
}

}  // namespace

void write_gedi_codes(const std::string& dir, const GediCodes& codes) {
  fs::create_directories(dir);
  const nlohmann::json j = {{"desired_code", codes.desired_text},
                            {"anti_code", codes.anti_text},
                            {"desired_code_id", codes.desired_code},
                            {"anti_code_id", codes.anti_code},
                            {"logit_scale", codes.logit_scale}};
  const fs::path tmp = fs::path(dir) / (std::string(kGediFile) + ".tmp");
  {
    std::ofstream out(tmp);
    out << j.dump(2) << "\n";
    RUDDER_CHECK(out.good(), tmp.string(), ": write failed");
  }
  fs::rename(tmp, fs::path(dir) / kGediFile);
}

GediCodes read_gedi_codes(const std::string& dir) {
  const fs::path path = fs::path(dir) / kGediFile;
  std::ifstream in(path);
  RUDDER_CHECK_T(core::NotFound, in.good(), path.string(),
                 ": cannot open (not a class-conditional LM directory?)");
  GediCodes c;
  try {
    const nlohmann::json j = nlohmann::json::parse(in);
    c.desired_text = j.at("desired_code").get<std::string>();
    c.anti_text = j.at("anti_code").get<std::string>();
    c.desired_code = j.at("desired_code_id").get<int64_t>();
    c.anti_code = j.at("anti_code_id").get<int64_t>();
    c.logit_scale = j.at("logit_scale").get<double>();
  } catch (const nlohmann::json::exception& e) {
    throw core::InvalidArgument(core::str(path.string(), ": ", e.what()));
  }
  RUDDER_CHECK(std::isfinite(c.logit_scale) && c.logit_scale > 0, path.string(),
               ": logit_scale must be a positive number, got ", c.logit_scale);
  return c;
}

Guidance make_guidance(const RolloutConfig& config, const models::ModelSpec& policy, int64_t slots,
                       int64_t max_length) {
  RUDDER_CHECK(max_length >= 0 && max_length <= policy.max_positions,
               "rollout_server.max_length must be in 0..", policy.max_positions,
               " (the policy's positions), got ", max_length);
  Guidance out;
  out.max_length = max_length > 0 ? max_length : policy.max_positions;
  const std::string& decoder = config.decoder();
  if (decoder == "sample") return out;
  RUDDER_CHECK(decoder != "best_of_n",
               "rollout.decoder best_of_n chooses among samples with a reward model; it is not a "
               "decoding rule of the engine (use decoder sample and best-of-N selection)");
  if (decoder == "genarm") {
    const auto& g = config.genarm();
    RUDDER_CHECK(g.arm_paths_size() > 0,
                 "rollout.decoder is genarm but rollout.genarm.arm_paths "
                 "names no autoregressive reward model");
    RUDDER_CHECK(g.weights_size() == 0 || g.weights_size() == g.arm_paths_size(),
                 "rollout.genarm.weights has ", g.weights_size(), " entries for ",
                 g.arm_paths_size(), " arm_paths (give one per ARM, or none for 1 each)");
    std::vector<std::shared_ptr<const models::DecoderWeights>> arms;
    for (const auto& path : g.arm_paths()) {
      arms.push_back(load_weights(path, "genarm.arm_paths", policy.vocab_size));
      out.max_length = fit_length(max_length, out.max_length, arms.back()->spec().max_positions,
                                  "genarm.arm_paths");
    }
    out.processors.push_back(std::make_shared<GenarmGuidance>(
        std::move(arms), std::vector<double>(g.weights().begin(), g.weights().end()), slots,
        out.max_length));
    return out;
  }
  RUDDER_CHECK(decoder == "gedi", "rollout.decoder '", decoder, "' is not known");
  const auto& g = config.gedi();
  auto cclm = load_weights(g.cclm_path(), "gedi.cclm_path", policy.vocab_size);
  const GediCodes codes = read_gedi_codes(g.cclm_path());
  // The CC-LM reads the control code first: one position fewer for the sequence.
  out.max_length =
      fit_length(max_length, out.max_length, cclm->spec().max_positions - 1, "gedi.cclm_path");
  GediOptions o;
  const bool to_desired = g.target() == "desired";
  o.desired_code = to_desired ? codes.desired_code : codes.anti_code;
  o.anti_code = to_desired ? codes.anti_code : codes.desired_code;
  o.posterior.logit_scale = codes.logit_scale;
  o.posterior.class_bias = g.class_bias();
  o.combine.omega = g.disc_weight();
  o.combine.filter_p = g.filter_p();
  // As GeDi's scripts: with a class bias b the threshold moves to sigmoid(logit(target_p) + b).
  const double t = g.target_p();
  o.combine.target_p = (g.class_bias() == 0 || t <= 0 || t >= 1)
                           ? t
                           : 1.0 / (1.0 + std::exp(-(std::log(t / (1 - t)) + g.class_bias())));
  out.processors.push_back(
      std::make_shared<GediGuidance>(std::move(cclm), o, slots, out.max_length));
  return out;
}

}  // namespace rudder::rollout
