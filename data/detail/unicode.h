// UTF-8 helpers and the GPT-2 byte <-> unicode map used by byte-level BPE.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace rudder::data::detail {

/// True when `text` is valid UTF-8.
bool valid_utf8(std::string_view text);

/// `text` with every invalid UTF-8 sequence replaced by U+FFFD (as Rust's from_utf8_lossy).
std::string lossy_utf8(std::string_view text);

/// The code points of valid UTF-8 `text`, each as its own UTF-8 string.
std::vector<std::string> utf8_chars(std::string_view text);

/// UTF-8 encoding of one code point.
std::string encode_utf8(uint32_t code_point);

/// NFC normalization (utf8proc).
std::string nfc(std::string_view text);

/// GPT-2's bytes_to_unicode: byte b -> a printable code point (as UTF-8).
const std::array<std::string, 256>& byte_to_unicode();

/// Inverse of byte_to_unicode: code point -> byte, or -1.
int unicode_to_byte(uint32_t code_point);

/// Decodes the first code point of `text` at `pos`, advancing `pos`.
uint32_t next_code_point(std::string_view text, size_t* pos);

}  // namespace rudder::data::detail
