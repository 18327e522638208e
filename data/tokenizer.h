// Tokenizers: the byte-level default (256 bytes + special tokens) and Hugging Face
// tokenizer.json byte-level BPE (GPT-2, Llama-3 and Qwen2 pre-tokenizers).
//
// Thread-safety: encode() and decode() are const and may run concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rudder {
class TokenizerConfig;
}

namespace rudder::data {

/// Text <-> token ids.
class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  /// Ids of `text`; added/special tokens written in the text become their single ids
  /// (leftmost-longest). No BOS/EOS is added. BPE tokenizers throw InvalidArgument for invalid
  /// UTF-8; the byte tokenizer takes any bytes.
  virtual std::vector<int64_t> encode(std::string_view text) const = 0;

  /// The text of `ids` (special tokens kept as their text). BPE tokenizers replace byte
  /// sequences that are not UTF-8 with U+FFFD, as Hugging Face's decode does; the byte tokenizer
  /// returns the bytes. Throws InvalidArgument for an id outside the vocabulary.
  virtual std::string decode(const std::vector<int64_t>& ids) const = 0;

  /// Number of ids (the model's embedding rows must be at least this many).
  virtual int64_t vocab_size() const = 0;

  /// The id of a token written exactly as `token` (added tokens and vocabulary entries).
  virtual std::optional<int64_t> token_id(std::string_view token) const = 0;

  /// End-of-sequence id appended to responses.
  int64_t eos_id() const { return eos_id_; }
  /// Beginning-of-sequence id, when the tokenizer has one.
  std::optional<int64_t> bos_id() const { return bos_id_; }
  /// Id used for padding (masked out everywhere it appears).
  int64_t pad_id() const { return pad_id_; }

 protected:
  int64_t eos_id_ = 0;
  std::optional<int64_t> bos_id_;
  int64_t pad_id_ = 0;
};

/// The embedded default: ids 0..255 are bytes, then <|pad|> 256, <|bos|> 257, <|eos|> 258,
/// <|sep|> 259 (vocabulary 260).
std::unique_ptr<Tokenizer> make_byte_tokenizer();

/// Loads a Hugging Face tokenizer.json (model BPE; normalizer none or NFC; pre-tokenizer ByteLevel
/// or Sequence[Split(regex, Isolated), ByteLevel]; decoder ByteLevel). EOS/BOS/pad come from
/// tokenizer_config.json beside it when present, else from the usual special-token names.
/// Throws InvalidArgument naming the file and the unsupported part.
std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::string& tokenizer_json_path);

/// The tokenizer a config asks for; `model_dir` is where kind `hf` looks when path is empty.
std::unique_ptr<Tokenizer> make_tokenizer(const TokenizerConfig& config,
                                          const std::string& model_dir = "");

}  // namespace rudder::data
