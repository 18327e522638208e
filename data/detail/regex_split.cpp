#include "data/detail/regex_split.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/error.h"

namespace rudder::data::detail {

struct RegexSplitter::Impl {
  pcre2_code* code = nullptr;
};

RegexSplitter::RegexSplitter(const std::string& pattern) : impl_(std::make_unique<Impl>()) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                              PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
  if (impl_->code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    throw core::InvalidArgument(core::str("bad pre-tokenizer regex at offset ", offset, ": ",
                                          reinterpret_cast<const char*>(message)));
  }
  pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter on failure
}

RegexSplitter::~RegexSplitter() { pcre2_code_free(impl_->code); }

std::vector<std::string> RegexSplitter::split(std::string_view text) const {
  std::vector<std::string> pieces;
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> match(
      pcre2_match_data_create_from_pattern(impl_->code, nullptr), &pcre2_match_data_free);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  size_t gap_start = 0;
  while (pos <= text.size()) {
    const int rc = pcre2_match(impl_->code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK,
                               match.get(), nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    RUDDER_CHECK(rc >= 0, "pre-tokenizer regex failed with PCRE2 error ", rc);
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match.get());
    const size_t start = ovector[0];
    const size_t end = ovector[1];
    if (end == start) {  // an empty match: step over one code point
      if (start >= text.size()) break;
      pos = start + 1;
      while (pos < text.size() && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) ++pos;
      continue;
    }
    if (start > gap_start) pieces.emplace_back(text.substr(gap_start, start - gap_start));
    pieces.emplace_back(text.substr(start, end - start));
    gap_start = pos = end;
  }
  if (gap_start < text.size()) pieces.emplace_back(text.substr(gap_start));
  return pieces;
}

}  // namespace rudder::data::detail
