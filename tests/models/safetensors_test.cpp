#include "models/safetensors.h"

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

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

// The dtype a safetensors header names, as libtorch's.
torch::Dtype header_dtype(const std::string& name) {
  static const std::map<std::string, torch::Dtype> dtypes = {
      {"F64", torch::kDouble},    {"F32", torch::kFloat}, {"F16", torch::kHalf},
      {"BF16", torch::kBFloat16}, {"I64", torch::kLong},  {"I32", torch::kInt},
      {"I16", torch::kShort},     {"I8", torch::kChar},   {"U8", torch::kByte},
      {"BOOL", torch::kBool}};
  const auto it = dtypes.find(name);
  if (it == dtypes.end()) throw std::runtime_error("dtype " + name + " in a golden file");
  return it->second;
}

// Every safetensors file of every golden model directory loads with the names, dtypes and
// shapes its own header gives (read here apart from the loader), and a reduced-precision copy
// of the weights is the float32 weights rounded, as the golden README says.
TEST(golden_safetensors, EveryFileLoadsAsItsHeaderSays) {
  const auto dirs = testing::golden_model_dirs();
  ASSERT_FALSE(dirs.empty()) << "no golden models under " << testing::golden_dir();
  int files = 0;
  for (const std::string& dir : dirs) {
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
      const std::string path = entry.path().string();
      if (entry.path().extension() != ".safetensors") continue;
      SCOPED_TRACE(path);
      ++files;
      const std::string bytes = read_file(path);
      ASSERT_GE(bytes.size(), 8u);
      uint64_t header_size = 0;
      for (int i = 7; i >= 0; --i)
        header_size =
            (header_size << 8) | static_cast<unsigned char>(bytes[static_cast<size_t>(i)]);
      const auto header = nlohmann::json::parse(bytes.substr(8, header_size));
      const SafetensorsContent content = load_safetensors(path);
      size_t listed = 0;
      for (const auto& [name, info] : header.items()) {
        if (name == "__metadata__") continue;
        ++listed;
        ASSERT_TRUE(content.tensors.count(name)) << name;
        const at::Tensor& t = content.tensors.at(name);
        EXPECT_EQ(t.scalar_type(), header_dtype(info.at("dtype"))) << name;
        EXPECT_EQ(t.sizes().vec(), info.at("shape").get<std::vector<int64_t>>()) << name;
      }
      EXPECT_EQ(content.tensors.size(), listed);
    }
    const std::string f32 = dir + "/model.safetensors", bf16 = dir + "/model.bf16.safetensors";
    if (!std::filesystem::exists(f32) || !std::filesystem::exists(bf16)) continue;
    const auto full = load_safetensors(f32).tensors, rounded = load_safetensors(bf16).tensors;
    int compared = 0;
    for (const auto& [name, t] : rounded) {
      if (t.scalar_type() != torch::kBFloat16 || !full.count(name)) continue;
      EXPECT_TRUE(torch::equal(full.at(name).to(torch::kBFloat16), t)) << bf16 << ": " << name;
      ++compared;
    }
    EXPECT_GT(compared, 0) << bf16 << " shares no bf16 tensor with " << f32;
  }
  EXPECT_GT(files, 0);
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
