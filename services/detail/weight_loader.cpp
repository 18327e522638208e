#include "services/detail/weight_loader.h"

#include <algorithm>
#include <cctype>
#include <filesystem>

#include <torch/torch.h>

#include "core/digest.h"
#include "core/error.h"
#include "models/causal_lm.h"
#include "models/decoder.h"
#include "models/hf_io.h"
#include "models/safetensors.h"
#include "rollout/generate_protocol.h"

namespace rudder::services::detail {
namespace {

namespace fs = std::filesystem;

std::string describe(const models::ModelSpec& s) {
  return core::str("vocab ", s.vocab_size, ", hidden ", s.hidden_size, ", layers ", s.num_layers,
                   ", heads ", s.num_heads, "/", s.num_kv_heads, ", head_dim ", s.head_dim,
                   ", intermediate ", s.intermediate_size);
}

bool same_sizes(const models::ModelSpec& a, const models::ModelSpec& b) {
  return a.architecture == b.architecture && a.vocab_size == b.vocab_size &&
         a.hidden_size == b.hidden_size && a.num_layers == b.num_layers &&
         a.num_heads == b.num_heads && a.num_kv_heads == b.num_kv_heads &&
         a.head_dim == b.head_dim && a.intermediate_size == b.intermediate_size;
}

void check_sha256(const WeightUpdate& update, const std::string& file, std::string* actual) {
  std::string expected = update.sha256();
  std::transform(expected.begin(), expected.end(), expected.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  RUDDER_CHECK(
      expected.size() == 64 && expected.find_first_not_of("0123456789abcdef") == std::string::npos,
      "weight update: sha256 must be 64 hex digits, got '", update.sha256(), "'");
  *actual = core::sha256_file(file);
  RUDDER_CHECK(*actual == expected, "weight update: SHA-256 of ", file, " is ", *actual,
               ", the update says ", expected, " (a partial or different file); nothing changed");
}

std::shared_ptr<models::CausalLM> load_model(const std::string& path,
                                             const models::ModelSpec& served) {
  try {
    if (fs::is_directory(path)) return models::load_hf_model(path);
    auto model = std::make_shared<models::CausalLM>(served);
    model->load_state_dict(models::load_safetensors(path).tensors, path);
    return model;
  } catch (const core::Error& e) {
    throw core::InvalidArgument(core::str("weight update: loading ", path, ": ", e.what()));
  }
}

}  // namespace

std::optional<uint64_t> parse_version(const std::string& version) {
  if (version.empty() || version.size() > 19 ||
      version.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  return std::stoull(version);
}

LoadedWeights load_weight_update(const WeightUpdate& update, const models::ModelSpec& served,
                                 const std::string& device) {
  const std::string& path = update.path();
  RUDDER_CHECK(!path.empty(), "weight update: path is empty");
  RUDDER_CHECK_T(core::NotFound, fs::exists(path), "weight update: path '", path,
                 "' does not exist on the rollout server");
  const std::string file = rollout::weights_file(path);
  // Only weights: no other file's digest comes back in an error.
  RUDDER_CHECK(fs::path(file).extension() == ".safetensors", "weight update: path '", path,
               "' is neither a model directory nor a .safetensors file");
  RUDDER_CHECK_T(core::NotFound, fs::is_regular_file(file), "weight update: ", file,
                 " does not exist (a directory must hold model.safetensors)");
  LoadedWeights out;
  check_sha256(update, file, &out.sha256);
  auto model = load_model(path, served);
  RUDDER_CHECK(same_sizes(model->spec(), served), "weight update: ", path, " has other sizes (",
               describe(model->spec()), ") than the served model (", describe(served), ")");
  model->to(torch::Device(device));
  model->eval();
  out.weights = std::make_shared<const models::DecoderWeights>(*model);
  return out;
}

}  // namespace rudder::services::detail
