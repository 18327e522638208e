// Byte-level BPE from a Hugging Face tokenizer.json (Sennrich et al. 2016; GPT-2's byte-level
// variant, Radford et al. 2019). Pipeline: added tokens are cut out of the raw text first
// (leftmost-longest); each remaining segment is normalized (NFC when asked), pre-tokenized
// (regex split, then bytes mapped to printable code points), and each piece is merged by
// rank.
#include <filesystem>
#include <fstream>
#include <mutex>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/detail/regex_split.h"
#include "data/detail/unicode.h"
#include "data/tokenizer.h"
#include "proto/rudder.pb.h"

namespace rudder::data {
namespace {

using core::str;
using nlohmann::json;

struct AddedToken {
  std::string content;
  int64_t id;
};

class BpeTokenizer : public Tokenizer {
 public:
  BpeTokenizer(const json& spec, const std::string& path) { load(spec, path); }

  std::vector<int64_t> encode(std::string_view text) const override {
    RUDDER_CHECK(detail::valid_utf8(text), "cannot tokenize: text is not valid UTF-8");
    std::vector<int64_t> ids;
    size_t pos = 0;
    while (pos <= text.size()) {
      // The leftmost added token, the longest one at that position.
      size_t best_pos = std::string_view::npos;
      const AddedToken* best = nullptr;
      for (const auto& added : added_) {
        const size_t found = text.find(added.content, pos);
        if (found == std::string_view::npos) continue;
        if (found < best_pos ||
            (found == best_pos && added.content.size() > best->content.size())) {
          best_pos = found;
          best = &added;
        }
      }
      const size_t segment_end = best ? best_pos : text.size();
      encode_segment(text.substr(pos, segment_end - pos), &ids);
      if (!best) break;
      ids.push_back(best->id);
      pos = best_pos + best->content.size();
    }
    return ids;
  }

  std::string decode(const std::vector<int64_t>& ids) const override {
    std::string out;
    for (int64_t id : ids) {
      RUDDER_CHECK(id >= 0 && static_cast<size_t>(id) < id_to_token_.size() && id_is_known_[id],
                   "token id ", id, " is not in the vocabulary (size ", vocab_size(), ")");
      if (id_is_added_[id]) {
        out += id_to_token_[id];
        continue;
      }
      const std::string& token = id_to_token_[id];
      size_t p = 0;
      while (p < token.size()) {
        const int byte = detail::unicode_to_byte(detail::next_code_point(token, &p));
        RUDDER_CHECK(byte >= 0, "token ", id, " is not byte-level");
        out += static_cast<char>(byte);
      }
    }
    return detail::valid_utf8(out) ? out : detail::lossy_utf8(out);
  }

  int64_t vocab_size() const override { return static_cast<int64_t>(id_to_token_.size()); }

  std::optional<int64_t> token_id(std::string_view token) const override {
    for (const auto& added : added_) {
      if (added.content == token) return added.id;
    }
    const auto it = vocab_.find(std::string(token));
    if (it != vocab_.end()) return it->second;
    return std::nullopt;
  }

  void set_special_ids(std::optional<int64_t> bos, int64_t eos, int64_t pad) {
    bos_id_ = bos;
    eos_id_ = eos;
    pad_id_ = pad;
  }

 private:
  void load(const json& spec, const std::string& path);
  void encode_segment(std::string_view segment, std::vector<int64_t>* ids) const;
  void bpe(const std::string& word, std::vector<int64_t>* ids) const;

  std::unordered_map<std::string, int64_t> vocab_;
  std::unordered_map<std::string, int> merge_rank_;  // "left\x01right" -> rank
  std::vector<std::string> id_to_token_;
  std::vector<bool> id_is_added_;
  std::vector<bool> id_is_known_;
  std::vector<AddedToken> added_;
  bool nfc_ = false;
  bool ignore_merges_ = false;
  bool add_prefix_space_ = false;
  std::unique_ptr<detail::RegexSplitter> split_;  // the pre-tokenizer's regex
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int64_t>> cache_;
};

void BpeTokenizer::load(const json& spec, const std::string& path) {
  const json& model = spec.at("model");
  RUDDER_CHECK(model.value("type", "") == "BPE", path, ": model.type '", model.value("type", ""),
               "' is not supported (only BPE)");
  RUDDER_CHECK(!model.value("byte_fallback", false), path, ": byte_fallback BPE is not supported");
  ignore_merges_ = model.value("ignore_merges", false);

  for (const auto& [token, id] : model.at("vocab").items())
    vocab_.emplace(token, id.get<int64_t>());
  int rank = 0;
  for (const auto& merge : model.at("merges")) {
    std::string left, right;
    if (merge.is_array()) {
      left = merge.at(0).get<std::string>();
      right = merge.at(1).get<std::string>();
    } else {
      const std::string text = merge.get<std::string>();
      const size_t space = text.find(' ');
      RUDDER_CHECK(space != std::string::npos, path, ": merge '", text, "' has no space");
      left = text.substr(0, space);
      right = text.substr(space + 1);
    }
    merge_rank_.emplace(left + '\x01' + right, rank++);
  }

  int64_t max_id = -1;
  for (const auto& [token, id] : vocab_) max_id = std::max(max_id, id);
  if (spec.contains("added_tokens")) {
    for (const auto& t : spec.at("added_tokens")) {
      added_.push_back({t.at("content").get<std::string>(), t.at("id").get<int64_t>()});
      max_id = std::max(max_id, added_.back().id);
    }
  }
  id_to_token_.assign(static_cast<size_t>(max_id + 1), "");
  id_is_added_.assign(id_to_token_.size(), false);
  id_is_known_.assign(id_to_token_.size(), false);
  for (const auto& [token, id] : vocab_) {
    id_to_token_[id] = token;
    id_is_known_[id] = true;
  }
  for (const auto& a : added_) {
    id_to_token_[a.id] = a.content;
    id_is_added_[a.id] = id_is_known_[a.id] = true;
  }

  const json& normalizer = spec.value("normalizer", json());
  if (!normalizer.is_null()) {
    RUDDER_CHECK(normalizer.value("type", "") == "NFC", path, ": normalizer '",
                 normalizer.value("type", ""), "' is not supported (only NFC or none)");
    nfc_ = true;
  }

  // Pre-tokenizer: ByteLevel (with GPT-2's regex or none) or Sequence[Split(regex), ByteLevel].
  const json& pre = spec.at("pre_tokenizer");
  std::vector<json> steps;
  if (pre.value("type", "") == "Sequence") {
    for (const auto& s : pre.at("pretokenizers")) steps.push_back(s);
  } else {
    steps.push_back(pre);
  }
  bool byte_level = false;
  for (const auto& step : steps) {
    const std::string type = step.value("type", "");
    if (type == "Split") {
      RUDDER_CHECK(!split_, path, ": more than one regex pre-tokenizer is not supported");
      RUDDER_CHECK(step.value("behavior", "") == "Isolated" && !step.value("invert", false), path,
                   ": Split pre-tokenizer must be behavior Isolated, invert false");
      RUDDER_CHECK(step.at("pattern").contains("Regex"), path, ": Split pattern must be a Regex");
      split_ = std::make_unique<detail::RegexSplitter>(
          step.at("pattern").at("Regex").get<std::string>());
    } else if (type == "ByteLevel") {
      byte_level = true;
      add_prefix_space_ = step.value("add_prefix_space", false);
      if (step.value("use_regex", true)) {
        RUDDER_CHECK(!split_, path, ": more than one regex pre-tokenizer is not supported");
        split_ = std::make_unique<detail::RegexSplitter>(detail::kGpt2Pattern);
      }
    } else {
      throw core::InvalidArgument(str(path, ": pre-tokenizer '", type, "' is not supported"));
    }
  }
  RUDDER_CHECK(byte_level, path, ": only byte-level BPE is supported (no ByteLevel pre-tokenizer)");
  const json& decoder = spec.value("decoder", json());
  RUDDER_CHECK(decoder.is_null() || decoder.value("type", "") == "ByteLevel", path, ": decoder '",
               decoder.value("type", ""), "' is not supported (only ByteLevel)");
}

void BpeTokenizer::encode_segment(std::string_view segment, std::vector<int64_t>* ids) const {
  if (segment.empty()) return;
  std::string text = nfc_ ? detail::nfc(segment) : std::string(segment);
  if (add_prefix_space_ && text.front() != ' ') text.insert(text.begin(), ' ');
  const std::vector<std::string> pieces =
      split_ ? split_->split(text) : std::vector<std::string>{text};
  const auto& bytes = detail::byte_to_unicode();
  for (const auto& piece : pieces) {
    std::string word;
    for (unsigned char c : piece) word += bytes[c];
    bpe(word, ids);
  }
}

void BpeTokenizer::bpe(const std::string& word, std::vector<int64_t>* ids) const {
  {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    const auto it = cache_.find(word);
    if (it != cache_.end()) {
      ids->insert(ids->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int64_t> out;
  const auto whole = vocab_.find(word);
  if (ignore_merges_ && whole != vocab_.end()) {
    out.push_back(whole->second);
  } else {
    // Merge the lowest-ranked adjacent pair everywhere, left to right, until none is left.
    std::vector<std::string> symbols = detail::utf8_chars(word);
    while (symbols.size() > 1) {
      int best_rank = std::numeric_limits<int>::max();
      for (size_t i = 0; i + 1 < symbols.size(); ++i) {
        const auto it = merge_rank_.find(symbols[i] + '\x01' + symbols[i + 1]);
        if (it != merge_rank_.end() && it->second < best_rank) best_rank = it->second;
      }
      if (best_rank == std::numeric_limits<int>::max()) break;
      std::vector<std::string> merged;
      for (size_t i = 0; i < symbols.size(); ++i) {
        if (i + 1 < symbols.size()) {
          const auto it = merge_rank_.find(symbols[i] + '\x01' + symbols[i + 1]);
          if (it != merge_rank_.end() && it->second == best_rank) {
            merged.push_back(symbols[i] + symbols[i + 1]);
            ++i;
            continue;
          }
        }
        merged.push_back(symbols[i]);
      }
      symbols = std::move(merged);
    }
    for (const auto& s : symbols) {
      const auto it = vocab_.find(s);
      RUDDER_CHECK(it != vocab_.end(), "BPE symbol '", s, "' is not in the vocabulary");
      out.push_back(it->second);
    }
  }
  ids->insert(ids->end(), out.begin(), out.end());
  std::lock_guard<std::mutex> lock(cache_mutex_);
  if (cache_.size() > 100000) cache_.clear();
  cache_.emplace(word, std::move(out));
}

json read_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  RUDDER_CHECK_T(core::NotFound, in.good(), path, ": cannot open");
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    throw core::InvalidArgument(str(path, ": malformed JSON: ", e.what()));
  }
}

// A special token of tokenizer_config.json: a string, or an object with "content".
std::optional<std::string> config_token(const json& config, const std::string& key) {
  if (!config.contains(key) || config.at(key).is_null()) return std::nullopt;
  const json& v = config.at(key);
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content")) return v.at("content").get<std::string>();
  return std::nullopt;
}

}  // namespace

std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::string& path) {
  const json spec = read_json(path);
  std::unique_ptr<BpeTokenizer> tok;
  try {
    tok = std::make_unique<BpeTokenizer>(spec, path);
  } catch (const json::exception& e) {
    throw core::InvalidArgument(str(path, ": unexpected tokenizer.json layout: ", e.what()));
  }
  const auto config_path = std::filesystem::path(path).parent_path() / "tokenizer_config.json";
  json config =
      std::filesystem::exists(config_path) ? read_json(config_path.string()) : json::object();
  auto lookup = [&](const std::string& key,
                    std::initializer_list<const char*> fallbacks) -> std::optional<int64_t> {
    if (auto name = config_token(config, key)) {
      auto id = tok->token_id(*name);
      RUDDER_CHECK(id.has_value(), config_path.string(), ": ", key, " '", *name,
                   "' is not a token");
      return id;
    }
    for (const char* name : fallbacks) {
      if (auto id = tok->token_id(name)) return id;
    }
    return std::nullopt;
  };
  const auto eos = lookup("eos_token", {"<|endoftext|>", "</s>", "<|end_of_text|>", "<|eot_id|>"});
  RUDDER_CHECK(eos.has_value(), path,
               ": no EOS token found (set eos_token in tokenizer_config.json)");
  const auto bos = lookup("bos_token", {"<s>", "<|begin_of_text|>"});
  const auto pad = lookup("pad_token", {});
  tok->set_special_ids(bos, *eos, pad.value_or(*eos));
  return tok;
}

std::unique_ptr<Tokenizer> make_tokenizer(const TokenizerConfig& config,
                                          const std::string& model_dir) {
  if (config.kind() == "byte") return make_byte_tokenizer();
  std::string path = config.path();
  if (path.empty()) {
    RUDDER_CHECK(!model_dir.empty(),
                 "tokenizer.kind is hf but neither tokenizer.path nor model.path is set");
    path = (std::filesystem::path(model_dir) / "tokenizer.json").string();
  }
  return load_hf_tokenizer(path);
}

}  // namespace rudder::data
