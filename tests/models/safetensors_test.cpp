#include "models/safetensors.h"

#include <fstream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/error.h"
#include "tests/support/tensor_testing.h"
#include "tests/support/test_support.h"

namespace rudder::models {
namespace {

class SafetensorsTest : public testing::SeededTest {};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string load_error(const std::string& path) {
  try {
    load_safetensors(path);
  } catch (const core::Error& e) {
    return e.what();
  }
  return "";
}

TEST_F(SafetensorsTest, RoundTripIsBitwiseForEveryDtype) {
  TensorMap tensors = {
      {"a.f32", torch::randn({3, 4})},
      {"b.bf16", torch::randn({5}).to(torch::kBFloat16)},
      {"c.f16", torch::randn({2, 2}).to(torch::kHalf)},
      {"d.i64", torch::arange(7)},
      {"e.empty", torch::zeros({0, 3})},
      {"f.bool", torch::tensor({true, false})},
  };
  testing::TempDir dir;
  const std::string path = dir.path() + "/x.safetensors";
  save_safetensors(path, tensors, {{"format", "pt"}});
  const SafetensorsContent back = load_safetensors(path);
  EXPECT_EQ(back.metadata.at("format"), "pt");
  ASSERT_EQ(back.tensors.size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    const at::Tensor& u = back.tensors.at(name);
    EXPECT_EQ(u.scalar_type(), t.scalar_type()) << name;
    EXPECT_TRUE(torch::equal(u, t)) << name;
  }
  // Saving what was loaded gives the same bytes.
  save_safetensors(dir.path() + "/y.safetensors", back.tensors, back.metadata);
  EXPECT_EQ(read_file(path), read_file(dir.path() + "/y.safetensors"));
}

TEST_F(SafetensorsTest, Reads_golden_Files) {
  const auto content =
      load_safetensors(testing::golden_dir() + "/models/gpt2_hub_layout/model.safetensors");
  EXPECT_EQ(content.tensors.at("h.0.attn.c_attn.weight").sizes(), (std::vector<int64_t>{64, 192}));
  EXPECT_EQ(content.metadata.at("format"), "pt");
}

TEST_F(SafetensorsTest, MalformedFilesNameTheFileAndTensor) {
  testing::TempDir dir;
  const std::string good = dir.path() + "/good.safetensors";
  save_safetensors(good, {{"w", torch::randn({16, 16})}});
  const std::string bytes = read_file(good);

  const std::string truncated =
      dir.write("truncated.safetensors", bytes.substr(0, bytes.size() - 100));
  std::string msg = load_error(truncated);
  EXPECT_NE(msg.find("truncated.safetensors: tensor 'w'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("truncated file"), std::string::npos) << msg;

  msg = load_error(dir.write("tiny.safetensors", "abc"));
  EXPECT_NE(msg.find("tiny.safetensors: truncated"), std::string::npos) << msg;

  std::string huge_header = bytes;
  huge_header[0] = '\xff';
  huge_header[1] = '\xff';
  msg = load_error(dir.write("header.safetensors", huge_header));
  EXPECT_NE(msg.find("header.safetensors: truncated"), std::string::npos) << msg;

  std::string bad_json = bytes;
  bad_json[8] = '[';
  msg = load_error(dir.write("json.safetensors", bad_json));
  EXPECT_NE(msg.find("json.safetensors"), std::string::npos) << msg;

  EXPECT_NE(load_error(dir.path() + "/absent.safetensors").find("cannot open"), std::string::npos);
}

}  // namespace
}  // namespace rudder::models
