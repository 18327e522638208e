// Splitting text with a PCRE2 regex (UTF + UCP, JIT), as Hugging Face's Split pre-tokenizer
// with behavior "Isolated" does: every match is a piece, and so is every gap between matches.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace rudder::data::detail {

/// A compiled regex. Thread-safe: each call uses its own match data.
class RegexSplitter {
 public:
  /// Compiles `pattern`; throws InvalidArgument with PCRE2's message and offset.
  explicit RegexSplitter(const std::string& pattern);
  ~RegexSplitter();
  RegexSplitter(const RegexSplitter&) = delete;
  RegexSplitter& operator=(const RegexSplitter&) = delete;

  /// Matches and gaps of `text` (valid UTF-8), in order, none empty.
  std::vector<std::string> split(std::string_view text) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// GPT-2's pre-tokenizer pattern (ByteLevel with use_regex).
inline constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

}  // namespace rudder::data::detail
