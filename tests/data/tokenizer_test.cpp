#include "data/tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "proto/rudder.pb.h"
#include "tests/support/test_support.h"

namespace rudder::data {
namespace {

namespace fs = std::filesystem;

// Each holds a tokenizer and its cases.
std::vector<fs::path> golden_tokenizer_dirs() {
  const std::vector<std::string> names = testing::golden_subdirs("tokenizers");
  return {names.begin(), names.end()};
}

TEST(golden_tokenizers, EncodeGivesReferenceIdsAndDecodeGivesTheText) {
  const auto dirs = golden_tokenizer_dirs();
  ASSERT_FALSE(dirs.empty()) << "no tokenizers under " << testing::golden_dir();
  for (const auto& dir : dirs) {
    SCOPED_TRACE(dir.string());
    const auto tok = load_hf_tokenizer((dir / "tokenizer.json").string());
    std::ifstream cases(dir / "cases.jsonl");
    ASSERT_TRUE(cases.good()) << "cannot read " << (dir / "cases.jsonl");
    std::string line;
    int n = 0;
    while (std::getline(cases, line)) {
      if (line.empty()) continue;
      const auto c = nlohmann::json::parse(line);
      const std::string text = c.at("text");
      const auto expected = c.at("ids").get<std::vector<int64_t>>();
      EXPECT_EQ(tok->encode(text), expected) << "text: " << c.at("text").dump();
      const std::string decoded = c.contains("decoded") ? c.at("decoded").get<std::string>() : text;
      EXPECT_EQ(tok->decode(expected), decoded) << "ids of: " << c.at("text").dump();
      ++n;
    }
    EXPECT_GT(n, 0) << "no cases in " << (dir / "cases.jsonl");
  }
}

// The token a tokenizer_config.json entry names (a string, or an object with "content").
std::optional<std::string> config_token(const nlohmann::json& config, const std::string& key) {
  if (!config.contains(key)) return std::nullopt;
  const auto& v = config.at(key);
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content")) return v.at("content").get<std::string>();
  return std::nullopt;
}

// Every golden tokenizer: the vocabulary runs to its largest id (model or added), the special
// ids are the tokens tokenizer_config.json names, and ids past the end and invalid UTF-8 are
// refused.
TEST(golden_tokenizers, SpecialIdsComeFromTheConfig) {
  const auto dirs = golden_tokenizer_dirs();
  ASSERT_FALSE(dirs.empty()) << "no tokenizers under " << testing::golden_dir();
  for (const auto& dir : dirs) {
    SCOPED_TRACE(dir.string());
    const auto tok = load_hf_tokenizer((dir / "tokenizer.json").string());
    const auto spec = nlohmann::json::parse(std::ifstream(dir / "tokenizer.json"));
    int64_t top = -1;
    for (const auto& [token, id] : spec.at("model").at("vocab").items())
      top = std::max(top, id.get<int64_t>());
    for (const auto& added : spec.value("added_tokens", nlohmann::json::array()))
      top = std::max(top, added.at("id").get<int64_t>());
    EXPECT_EQ(tok->vocab_size(), top + 1);
    if (fs::exists(dir / "tokenizer_config.json")) {
      const auto config = nlohmann::json::parse(std::ifstream(dir / "tokenizer_config.json"));
      if (const auto eos = config_token(config, "eos_token")) {
        EXPECT_EQ(std::optional<int64_t>(tok->eos_id()), tok->token_id(*eos)) << *eos;
      }
      if (const auto bos = config_token(config, "bos_token")) {
        EXPECT_EQ(tok->bos_id(), tok->token_id(*bos)) << *bos;
      }
      if (const auto pad = config_token(config, "pad_token")) {
        EXPECT_EQ(std::optional<int64_t>(tok->pad_id()), tok->token_id(*pad)) << *pad;
      }
    }
    EXPECT_THROW(tok->decode({tok->vocab_size()}), core::InvalidArgument);
    EXPECT_THROW(tok->encode(std::string("bad \xff byte")), core::InvalidArgument);
  }
}

TEST(Tokenizers, ByteTokenizerRoundTripsAnyText) {
  const auto tok = make_byte_tokenizer();
  const std::string text = "Héllo, 世界! 123 <|eos|>";
  const auto ids = tok->encode(text);
  EXPECT_EQ(ids.back(), tok->eos_id());
  EXPECT_EQ(ids.front(), 'H');
  EXPECT_EQ(tok->decode(ids), text);
  EXPECT_EQ(tok->vocab_size(), 260);
  EXPECT_EQ(tok->pad_id(), 256);
  EXPECT_THROW(tok->decode({260}), core::InvalidArgument);
}

TEST(Tokenizers, UnsupportedFilesAreNamed) {
  testing::TempDir dir;
  const std::string path =
      dir.write("tokenizer.json", R"({"model": {"type": "Unigram", "vocab": []},
    "pre_tokenizer": {"type": "Metaspace"}})");
  try {
    load_hf_tokenizer(path);
    FAIL();
  } catch (const core::InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("model.type 'Unigram' is not supported"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(load_hf_tokenizer(dir.write("bad.json", "{not json")), core::InvalidArgument);
  EXPECT_THROW(load_hf_tokenizer(dir.path() + "/absent.json"), core::NotFound);
  TokenizerConfig config;
  config.set_kind("hf");
  EXPECT_THROW(make_tokenizer(config), core::InvalidArgument);
}

}  // namespace
}  // namespace rudder::data
