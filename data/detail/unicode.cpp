#include "data/detail/unicode.h"

#include <cstdlib>
#include <memory>
#include <unordered_map>

#include <utf8proc.h>

#include "core/error.h"

namespace rudder::data::detail {

bool valid_utf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    size_t len = c < 0x80           ? 1
                 : (c >> 5) == 0x6  ? 2
                 : (c >> 4) == 0xE  ? 3
                 : (c >> 3) == 0x1E ? 4
                                    : 0;
    if (len == 0 || i + len > text.size()) return false;
    uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    for (size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(text[i + k]);
      if ((cc >> 6) != 0x2) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    const uint32_t min_for_len[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_for_len[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

std::string lossy_utf8(std::string_view text) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    // The longest prefix of 1-4 bytes that is one valid code point; else one replacement char.
    size_t taken = 0;
    for (size_t len = 1; len <= 4 && i + len <= text.size(); ++len) {
      if (valid_utf8(text.substr(i, len))) {
        taken = len;
        break;
      }
    }
    if (taken == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out += text.substr(i, taken);
      i += taken;
    }
  }
  return out;
}

uint32_t next_code_point(std::string_view text, size_t* pos) {
  const auto c = static_cast<unsigned char>(text[*pos]);
  const size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : 4;
  uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
  for (size_t k = 1; k < len && *pos + k < text.size(); ++k)
    cp = (cp << 6) | (text[*pos + k] & 0x3F);
  *pos += len;
  return cp;
}

std::vector<std::string> utf8_chars(std::string_view text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t start = pos;
    next_code_point(text, &pos);
    out.emplace_back(text.substr(start, pos - start));
  }
  return out;
}

std::string encode_utf8(uint32_t cp) {
  std::string out;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return out;
}

std::string nfc(std::string_view text) {
  std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> out(
      utf8proc_NFC(reinterpret_cast<const utf8proc_uint8_t*>(std::string(text).c_str())),
      &std::free);
  RUDDER_CHECK(out != nullptr, "NFC normalization failed (invalid UTF-8?)");
  return reinterpret_cast<const char*>(out.get());
}

namespace {

// bytes_to_unicode (Radford et al. 2019, GPT-2 encoder.py): printable bytes map to themselves,
// the others to 256, 257, ... in byte order.
struct ByteMap {
  std::array<std::string, 256> forward;
  std::unordered_map<uint32_t, int> backward;
  ByteMap() {
    int next = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable =
          (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const uint32_t cp =
          printable ? static_cast<uint32_t>(b) : static_cast<uint32_t>(256 + next++);
      forward[b] = encode_utf8(cp);
      backward[cp] = b;
    }
  }
};

const ByteMap& byte_map() {
  static const ByteMap map;
  return map;
}

}  // namespace

const std::array<std::string, 256>& byte_to_unicode() { return byte_map().forward; }

int unicode_to_byte(uint32_t cp) {
  const auto& m = byte_map().backward;
  const auto it = m.find(cp);
  return it == m.end() ? -1 : it->second;
}

}  // namespace rudder::data::detail
