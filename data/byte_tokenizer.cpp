#include "core/error.h"
#include "data/detail/unicode.h"
#include "data/tokenizer.h"

namespace rudder::data {
namespace {

// The embedded default: one id per byte, special tokens after them.
class ByteTokenizer : public Tokenizer {
 public:
  ByteTokenizer() {
    pad_id_ = 256;
    bos_id_ = 257;
    eos_id_ = 258;
  }

  std::vector<int64_t> encode(std::string_view text) const override {
    std::vector<int64_t> ids;
    ids.reserve(text.size());
    size_t i = 0;
    while (i < text.size()) {
      bool special = false;
      for (size_t s = 0; s < kSpecials.size(); ++s) {
        if (text.compare(i, kSpecials[s].size(), kSpecials[s]) == 0) {
          ids.push_back(256 + static_cast<int64_t>(s));
          i += kSpecials[s].size();
          special = true;
          break;
        }
      }
      if (!special) ids.push_back(static_cast<unsigned char>(text[i++]));
    }
    return ids;
  }

  std::string decode(const std::vector<int64_t>& ids) const override {
    std::string out;
    for (int64_t id : ids) {
      RUDDER_CHECK(id >= 0 && id < vocab_size(), "token id ", id,
                   " is outside the byte vocabulary of ", vocab_size());
      if (id < 256)
        out += static_cast<char>(id);
      else
        out += kSpecials[static_cast<size_t>(id - 256)];
    }
    return out;
  }

  int64_t vocab_size() const override { return 256 + static_cast<int64_t>(kSpecials.size()); }

  std::optional<int64_t> token_id(std::string_view token) const override {
    for (size_t s = 0; s < kSpecials.size(); ++s) {
      if (token == kSpecials[s]) return 256 + static_cast<int64_t>(s);
    }
    if (token.size() == 1) return static_cast<unsigned char>(token[0]);
    return std::nullopt;
  }

 private:
  static constexpr std::array<std::string_view, 4> kSpecials = {"<|pad|>", "<|bos|>", "<|eos|>",
                                                                "<|sep|>"};
};

}  // namespace

std::unique_ptr<Tokenizer> make_byte_tokenizer() { return std::make_unique<ByteTokenizer>(); }

}  // namespace rudder::data
