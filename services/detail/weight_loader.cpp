#include "services/detail/weight_loader.h"

#include <algorithm>
#include <cctype>
#include <filesystem>

#include <torch/torch.h>

#include "core/digest.h"
#include "core/error.h"
#include "core/log.h"
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
  // The file's own digest stays out of the answer: it says something of any file named as
  // weights that the server can read.
  RUDDER_CHECK(*actual == expected, "weight update: the SHA-256 of ", file, " is not ", expected,
               " (a partial or different file); nothing changed");
}

std::shared_ptr<models::CausalLM> load_model(const std::string& path,
                                             const models::ModelSpec& served) {
  try {
    if (fs::is_directory(path)) return models::load_hf_model(path);
    auto model = std::make_shared<models::CausalLM>(served);
    model->load_state_dict(models::load_safetensors(path).tensors, path);
    return model;
  } catch (const core::Error& e) {
    // The cause may quote the files (a config's values, a header's bytes), and a link may lead
    // them anywhere: it goes to the server's log, not to the client.
    RUDDER_LOG(kWarn) << "weight update: loading " << path << ": " << e.what();
    throw core::InvalidArgument(core::str("weight update: ", path,
                                          " does not load as a model (the server's log says why)"));
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
  std::error_code error;
  const fs::file_status at = fs::status(path, error);
  RUDDER_CHECK_T(core::NotFound, at.type() != fs::file_type::not_found, "weight update: path '",
                 path, "' does not exist on the rollout server");
  RUDDER_CHECK(!error, "weight update: path '", path, "' cannot be read: ", error.message());
  const std::string file = rollout::weights_file(path);
  const std::string not_weights = core::str(
      "weight update: path '", path, "' is neither a model directory nor a .safetensors file");
  RUDDER_CHECK(fs::path(file).extension() == ".safetensors", not_weights);
  const fs::file_status weights = fs::status(file, error);
  RUDDER_CHECK_T(core::NotFound, weights.type() != fs::file_type::not_found,
                 "weight update: ", file,
                 " does not exist (a directory must hold model.safetensors)");
  RUDDER_CHECK(!error, "weight update: ", file, " cannot be read: ", error.message());
  RUDDER_CHECK(fs::is_regular_file(weights), "weight update: ", file, " is not a regular file");
  // Through links, only a file named as weights is hashed: no other file's digest can be tried.
  const fs::path target = fs::canonical(file, error);
  RUDDER_CHECK(!error && target.extension() == ".safetensors", not_weights,
               " (links are followed)");
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
