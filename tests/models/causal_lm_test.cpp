#include "models/causal_lm.h"

#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "models/chunked_logprobs.h"
#include "models/hf_io.h"
#include "models/lora.h"
#include "proto/rudder.pb.h"
#include "tests/support/tensor_testing.h"
#include "tests/support/test_support.h"

namespace rudder::models {
namespace {

namespace fs = std::filesystem;
using namespace torch::indexing;
using testing::expect_tensor_near;

// The golden README's tolerance: float32 against float64-computed references.
constexpr double kAtol = 1e-4;

// The tags of a model directory's reduced-precision variants: "bf16" for model.bf16.safetensors
// and expected.bf16.safetensors (either file names its tag; the test wants both).
std::vector<std::string> variant_tags(const fs::path& dir) {
  const std::string suffix = ".safetensors";
  std::set<std::string> tags;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    for (const std::string prefix : {"model.", "expected."}) {
      if (name.rfind(prefix, 0) != 0 || name.size() <= prefix.size() + suffix.size() ||
          name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
        continue;
      tags.insert(name.substr(prefix.size(), name.size() - prefix.size() - suffix.size()));
    }
  }
  return {tags.begin(), tags.end()};
}

// A buffer Hugging Face files carry that the loader ignores (GPT-2's causal masks, rotary
// frequencies): kept in float32 whatever the weights' dtype.
bool ignorable_buffer(const std::string& name) {
  return name.find(".attn.bias") != std::string::npos ||
         name.find(".attn.masked_bias") != std::string::npos ||
         name.find("rotary_emb.inv_freq") != std::string::npos;
}

// Runs every check of the golden README on one model against one expected file.
void check_against(CausalLM& model, const TensorMap& expected, const std::string& label) {
  torch::NoGradGuard no_grad;
  const torch::Device device = testing::test_device();
  model.to(device);
  const TensorMap e = testing::to_device(expected, device);
  const at::Tensor ids = e.at("input_ids"), mask = e.at("attention_mask");
  const at::Tensor mask3 = mask.unsqueeze(-1);  // [B, T, 1]

  // Full forward, right padding, with the hidden states.
  std::vector<at::Tensor> hidden;
  models::ForwardInput input{ids, mask, e.at("position_ids")};
  input.hidden = &hidden;
  const at::Tensor logits = model.forward(input);
  expect_tensor_near(logits, e.at("logits"), kAtol, label + " logits", mask3);
  ASSERT_EQ(hidden.size(), static_cast<size_t>(model.spec().num_layers + 2));
  expect_tensor_near(hidden.front(), e.at("hidden.embed"), kAtol, label + " hidden.embed", mask3);
  for (int64_t i = 0; i < model.spec().num_layers; ++i) {
    const std::string key = "hidden.layer." + std::to_string(i);
    expect_tensor_near(hidden[i + 1], e.at(key), kAtol, label + " " + key, mask3);
  }
  expect_tensor_near(hidden.back(), e.at("hidden.final_norm"), kAtol, label + " hidden.final_norm",
                     mask3);

  // Left padding with HF generate's position ids.
  const at::Tensor left_mask = e.at("left.attention_mask");
  const at::Tensor left =
      model.forward({e.at("left.input_ids"), left_mask, e.at("left.position_ids")});
  expect_tensor_near(left, e.at("left.logits"), kAtol, label + " left.logits",
                     left_mask.unsqueeze(-1));

  // Prefill, then single-token cached decoding.
  const int64_t prefill = e.at("prefill_logits").size(1);
  const int64_t total = ids.size(1);
  const at::Tensor positions =
      torch::arange(total, ids.options()).unsqueeze(0).expand_as(ids).contiguous();
  KVCache cache;
  const at::Tensor pre = model.forward({ids.index({Slice(), Slice(0, prefill)}),
                                        mask.index({Slice(), Slice(0, prefill)}),
                                        positions.index({Slice(), Slice(0, prefill)}), &cache});
  expect_tensor_near(pre, e.at("prefill_logits"), kAtol, label + " prefill_logits",
                     mask.index({Slice(), Slice(0, prefill)}).unsqueeze(-1));
  EXPECT_EQ(cache.length(), prefill);
  std::vector<at::Tensor> steps;
  for (int64_t t = prefill; t < total; ++t) {
    steps.push_back(model.forward({ids.index({Slice(), Slice(t, t + 1)}),
                                   mask.index({Slice(), Slice(0, t + 1)}),
                                   positions.index({Slice(), Slice(t, t + 1)}), &cache}));
  }
  at::Tensor cached_all = pre;
  if (!steps.empty()) {
    const at::Tensor decoded = torch::cat(steps, 1);  // [B, T - prefill, V]
    expect_tensor_near(decoded, e.at("decode_logits"), kAtol, label + " decode_logits",
                       mask.index({Slice(), Slice(prefill, total)}).unsqueeze(-1));
    cached_all = torch::cat({pre, decoded}, 1);
  }

  // The next-token distribution after each row's last real token.
  const at::Tensor seq_lens = e.at("seq_lens");
  for (int64_t b = 0; b < ids.size(0); ++b) {
    const int64_t last = seq_lens[b].item<int64_t>() - 1;
    expect_tensor_near(cached_all[b][last], e.at("logits_last_decode")[b], kAtol,
                       label + " logits_last_decode row " + std::to_string(b));
  }
}

TEST(golden_models, LogitsHiddenStatesAndKvCacheMatchReference) {
  const auto dirs = testing::golden_model_dirs();
  ASSERT_FALSE(dirs.empty()) << "no model directories under " << testing::golden_dir();
  for (const fs::path dir : dirs) {
    SCOPED_TRACE(dir.string());
    auto model = load_hf_model(dir.string());
    model->eval();
    check_against(*model, load_safetensors((dir / "expected.safetensors").string()).tensors,
                  dir.filename().string());

    // Each reduced-precision checkpoint (bf16): weights upcast exactly to float32, against its
    // own expected file.
    for (const std::string& tag : variant_tags(dir)) {
      const fs::path weights_path = dir / ("model." + tag + ".safetensors");
      const fs::path expected_path = dir / ("expected." + tag + ".safetensors");
      ASSERT_TRUE(fs::exists(weights_path)) << expected_path << " without " << weights_path;
      ASSERT_TRUE(fs::exists(expected_path)) << weights_path << " without " << expected_path;
      CausalLM reduced(read_hf_config((dir / "config.json").string()));
      const auto weights = load_safetensors(weights_path.string()).tensors;
      int stored_reduced = 0;
      for (const auto& [name, t] : weights) {
        if (!t.is_floating_point() || ignorable_buffer(name)) continue;
        EXPECT_NE(t.scalar_type(), torch::kFloat) << name << " is float32 in " << weights_path;
        ++stored_reduced;
      }
      EXPECT_GT(stored_reduced, 0) << weights_path;
      reduced.load_state_dict(weights, weights_path.filename().string());
      check_against(reduced, load_safetensors(expected_path.string()).tensors,
                    dir.filename().string() + " " + tag);
    }
  }
}

TEST(golden_models, ReducedPrecisionExpectationsDifferFromFloat32) {
  // The two expected files must be told apart, or mixing them up would go unnoticed: ten times
  // the tolerance apart at least (about 0.19 in the public set).
  int compared = 0;
  for (const fs::path dir : testing::golden_model_dirs()) {
    for (const std::string& tag : variant_tags(dir)) {
      const fs::path reduced_path = dir / ("expected." + tag + ".safetensors");
      if (!fs::exists(reduced_path)) continue;  // the test above names the missing file
      ++compared;
      const auto f32 = load_safetensors((dir / "expected.safetensors").string()).tensors;
      const auto reduced = load_safetensors(reduced_path.string()).tensors;
      EXPECT_GT(testing::max_abs_diff(f32.at("logits"), reduced.at("logits"),
                                      f32.at("attention_mask").unsqueeze(-1)),
                10 * kAtol)
          << reduced_path;
    }
  }
  // Nothing compared is not a pass.
  if (compared == 0)
    GTEST_SKIP() << "no model with a reduced-precision variant under " << testing::golden_dir();
}

class CausalLMTest : public testing::SeededTest {};

ModelSpec tiny_llama() {
  ModelSpec s;
  s.vocab_size = 50;
  s.hidden_size = 32;
  s.num_layers = 2;
  s.num_heads = 4;
  s.num_kv_heads = 2;
  s.head_dim = 8;
  s.intermediate_size = 64;
  s.max_positions = 64;
  return s;
}

// 640 tokens of 4 heads make 1.6M score elements, past the 1M that attention takes at once: the
// full forward attends a block of query rows at a time. Prefilling 64 tokens at a time with the
// cache attends whole; both must give the same logits.
TEST_F(CausalLMTest, LongInputsAttendInBlocksAsTheCachedPathWhole) {
  ModelSpec s = tiny_llama();
  s.max_positions = 1024;
  CausalLM model(s);
  model.eval();
  torch::NoGradGuard no_grad;
  const int64_t T = 640;
  const at::Tensor ids = torch::randint(0, s.vocab_size, {1, T});
  const at::Tensor pos = torch::arange(T).unsqueeze(0);
  const at::Tensor full = model.forward({ids, torch::ones({1, T}, torch::kLong), pos});
  KVCache cache;
  std::vector<at::Tensor> pieces;
  for (int64_t start = 0; start < T; start += 64) {
    pieces.push_back(
        model.forward({ids.narrow(1, start, 64), torch::ones({1, start + 64}, torch::kLong),
                       pos.narrow(1, start, 64), &cache}));
  }
  expect_tensor_near(full, torch::cat(pieces, 1), 1e-5, "blocked against cached logits");
}

// The backward through the blocks: a loss on the first 64 positions of 640 tokens (blocked)
// gives every parameter the gradient it gets from those 64 tokens alone (attended whole), as
// attention is causal.
TEST_F(CausalLMTest, BlockedAttentionGradientsMatchTheWholePrefix) {
  ModelSpec s = tiny_llama();
  s.max_positions = 1024;
  CausalLM model(s);
  const int64_t T = 640, P = 64;
  const at::Tensor ids = torch::randint(0, s.vocab_size, {1, T});
  const at::Tensor pos = torch::arange(T).unsqueeze(0);
  auto grads_of = [&](int64_t length) {
    model.zero_grad();
    model
        .forward({ids.narrow(1, 0, length), torch::ones({1, length}, torch::kLong),
                  pos.narrow(1, 0, length)})
        .narrow(1, 0, P)
        .pow(2)
        .mean()
        .backward();
    std::vector<at::Tensor> out;
    for (const auto& p : model.parameters()) out.push_back(p.grad().clone());
    return out;
  };
  const auto blocked = grads_of(T), whole = grads_of(P);
  ASSERT_EQ(blocked.size(), whole.size());
  for (size_t i = 0; i < blocked.size(); ++i)
    expect_tensor_near(blocked[i], whole[i], 1e-5, "gradient " + std::to_string(i));
}

// A tied embedding takes its gradient as sparse rows when the head follows in the same graph
// (forward(), score_tokens()) and densely otherwise; the parameter's gradient is dense and the
// same either way, Llama and GPT-2.
TEST_F(CausalLMTest, TiedEmbeddingGradientIsDenseAndTheSameWhicheverWayItArrives) {
  for (const bool gpt2 : {false, true}) {
    ModelSpec s = tiny_llama();
    s.tie_word_embeddings = true;
    if (gpt2) {
      s.architecture = Architecture::kGpt2;
      s.num_kv_heads = s.num_heads;
    }
    CausalLM model(s);
    const std::string arch = gpt2 ? "gpt2" : "llama";
    const at::Tensor ids = torch::randint(0, s.vocab_size, {2, 12});
    const at::Tensor pos = torch::arange(12).expand({2, 12}).contiguous();
    const at::Tensor mask = torch::ones({2, 12}, torch::kLong);
    const at::Tensor weight = model.output_head().weight;
    auto clear = [&] {
      for (auto& p : model.parameters()) p.mutable_grad() = at::Tensor();
    };
    auto dense_grad = [&](const std::string& path) {
      EXPECT_TRUE(weight.grad().defined()) << arch << " " << path;
      EXPECT_FALSE(weight.grad().is_sparse()) << arch << " " << path;
      return weight.grad().clone();
    };
    clear();
    model.forward({ids, mask, pos}).pow(2).mean().backward();
    const at::Tensor through_forward = dense_grad("forward");
    clear();
    torch::matmul(model.final_hidden({ids, mask, pos}), weight.t()).pow(2).mean().backward();
    expect_tensor_near(through_forward, dense_grad("final_hidden and the head"), 1e-6,
                       arch + " tied embedding gradient");

    clear();
    const at::Tensor logits = model.forward({ids, mask, pos}).narrow(1, 0, 11);
    torch::log_softmax(logits, -1).gather(2, ids.narrow(1, 1, 11).unsqueeze(2)).sum().backward();
    const at::Tensor full = dense_grad("full logits");
    for (const int64_t chunk_tokens : {int64_t{24}, int64_t{5}}) {  // one chunk, then chunked
      ChunkedScoreOptions options;
      options.chunk_elements = chunk_tokens * s.vocab_size;
      clear();
      score_tokens(model, {ids, mask, pos}, {}, options).logprobs.sum().backward();
      expect_tensor_near(dense_grad("score_tokens"), full, 1e-5,
                         arch + " scored gradient, " + std::to_string(chunk_tokens) + " a chunk");
    }

    clear();  // a reward model's path: the hidden states alone
    model.final_hidden({ids, mask, pos}).sum().backward();
    dense_grad("final_hidden alone");
  }
}

TEST_F(CausalLMTest, SaveLoadRoundTripIsBitwise) {
  for (const bool gpt2 : {false, true}) {
    ModelSpec s = tiny_llama();
    if (gpt2) {
      s.architecture = Architecture::kGpt2;
      s.model_type = "gpt2";
      s.num_kv_heads = s.num_heads;
      s.tie_word_embeddings = true;
    }
    CausalLM model(s);
    testing::TempDir dir;
    save_hf_model(model, dir.path());
    auto loaded = load_hf_model(dir.path());
    const TensorMap a = model.state_dict(), b = loaded->state_dict();
    ASSERT_EQ(a.size(), b.size());
    for (const auto& [name, t] : a) EXPECT_TRUE(torch::equal(t, b.at(name))) << name;
  }
}

TEST_F(CausalLMTest, ShardedCheckpointLoads) {
  CausalLM model(tiny_llama());
  testing::TempDir dir;
  save_hf_model(model, dir.path());
  TensorMap first, second;
  nlohmann::json index;
  int i = 0;
  for (const auto& [name, t] : model.state_dict()) {
    const std::string shard =
        (i++ % 2) ? "model-00002-of-00002.safetensors" : "model-00001-of-00002.safetensors";
    ((i % 2) ? first : second).emplace(name, t);
    index["weight_map"][name] = shard;
  }
  save_safetensors(dir.path() + "/model-00001-of-00002.safetensors", first);
  save_safetensors(dir.path() + "/model-00002-of-00002.safetensors", second);
  fs::remove(dir.path() + "/model.safetensors");
  dir.write("model.safetensors.index.json", index.dump());
  auto loaded = load_hf_model(dir.path());
  for (const auto& [name, t] : model.state_dict())
    EXPECT_TRUE(torch::equal(t, loaded->state_dict().at(name))) << name;
}

std::string load_error(const std::string& dir) {
  try {
    load_hf_model(dir);
  } catch (const core::Error& e) {
    return e.what();
  }
  return "";
}

TEST_F(CausalLMTest, BadCheckpointsGetClearErrors) {
  CausalLM model(tiny_llama());
  testing::TempDir dir;
  save_hf_model(model, dir.path());

  TensorMap missing = model.state_dict();
  missing.erase("model.norm.weight");
  save_safetensors(dir.path() + "/model.safetensors", missing);
  EXPECT_NE(load_error(dir.path()).find("missing tensor 'model.norm.weight'"), std::string::npos);

  TensorMap wrong = model.state_dict();
  wrong["model.norm.weight"] = torch::ones({7});
  save_safetensors(dir.path() + "/model.safetensors", wrong);
  EXPECT_NE(
      load_error(dir.path()).find("'model.norm.weight' has shape [7], the model expects [32]"),
      std::string::npos)
      << load_error(dir.path());

  TensorMap extra = model.state_dict();
  extra["model.layers.9.mystery"] = torch::ones({1});
  save_safetensors(dir.path() + "/model.safetensors", extra);
  EXPECT_NE(load_error(dir.path()).find("unexpected tensor 'model.layers.9.mystery'"),
            std::string::npos);

  dir.write("config.json", R"({"model_type": "bert", "vocab_size": 10})");
  EXPECT_NE(load_error(dir.path()).find("unsupported model_type 'bert'"), std::string::npos);

  dir.write("config.json", R"({"model_type": "llama", "vocab_size": 10})");
  EXPECT_NE(load_error(dir.path()).find("missing key 'hidden_size'"), std::string::npos);
}

// Options of config.json that would change the outputs and that the model does not implement
// are refused by name, never loaded as if absent.
TEST(ModelConfig, OptionsTheModelCannotHonourAreRefused) {
  testing::TempDir dir;
  const std::string gpt2 =
      R"("model_type": "gpt2", "vocab_size": 40, "n_embd": 32, "n_layer": 1, "n_head": 4,
         "n_positions": 16)";
  const std::string qwen2 =
      R"("model_type": "qwen2", "vocab_size": 40, "hidden_size": 32, "num_hidden_layers": 1,
         "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 48)";
  const auto refusal = [&](const std::string& config) {
    try {
      read_hf_config(dir.write("config.json", "{" + config + "}"));
    } catch (const core::InvalidArgument& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(refusal(gpt2), "");
  EXPECT_EQ(refusal(gpt2 + R"(, "tie_word_embeddings": true, "scale_attn_weights": true)"), "");
  EXPECT_NE(refusal(gpt2 + R"(, "tie_word_embeddings": false)").find("tie_word_embeddings false"),
            std::string::npos);
  EXPECT_NE(refusal(gpt2 + R"(, "scale_attn_weights": false)").find("scale_attn_weights false"),
            std::string::npos);
  EXPECT_EQ(refusal(qwen2 + R"(, "use_sliding_window": false)"), "");
  EXPECT_NE(refusal(qwen2 + R"(, "use_sliding_window": true)").find("use_sliding_window"),
            std::string::npos);
}

}  // namespace
}  // namespace rudder::models
