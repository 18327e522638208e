#include "data/tokenizer.h"

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "proto/rudder.pb.h"
#include "tests/support/test_support.h"

namespace rudder::data {
namespace {

namespace fs = std::filesystem;

std::vector<fs::path> golden_tokenizer_dirs() {
  std::vector<fs::path> dirs;
  const fs::path root = fs::path(testing::golden_dir()) / "tokenizers";
  if (!fs::exists(root)) return dirs;
  for (const auto& entry : fs::directory_iterator(root)) {
    if (fs::exists(entry.path() / "tokenizer.json") && fs::exists(entry.path() / "cases.jsonl")) {
      dirs.push_back(entry.path());
    }
  }
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

TEST(golden_tokenizers, EncodeGivesReferenceIdsAndDecodeGivesTheText) {
  const auto dirs = golden_tokenizer_dirs();
  ASSERT_FALSE(dirs.empty()) << "no tokenizers under " << testing::golden_dir();
  for (const auto& dir : dirs) {
    SCOPED_TRACE(dir.string());
    const auto tok = load_hf_tokenizer((dir / "tokenizer.json").string());
    std::ifstream cases(dir / "cases.jsonl");
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
    EXPECT_GT(n, 10);
  }
}

TEST(Tokenizers, SpecialIdsComeFromTheConfig) {
  const fs::path dir = fs::path(testing::golden_dir()) / "tokenizers" / "gpt2";
  const auto tok = load_hf_tokenizer((dir / "tokenizer.json").string());
  EXPECT_EQ(tok->eos_id(), 50256);
  EXPECT_EQ(tok->vocab_size(), 50257);
  EXPECT_EQ(tok->token_id("<|endoftext|>"), 50256);
  EXPECT_THROW(tok->decode({50257}), core::InvalidArgument);
  EXPECT_THROW(tok->encode(std::string("bad \xff byte")), core::InvalidArgument);
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
