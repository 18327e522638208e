#include "data/synthetic.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <functional>
#include <sstream>

#include "core/error.h"

namespace rudder::data {
namespace {

const std::vector<std::string> kPositive = {"great", "fun",   "lovely", "superb",
                                            "good",  "happy", "bright", "warm"};
const std::vector<std::string> kNegative = {"bad", "dull", "awful", "boring",
                                            "sad", "poor", "weak",  "grim"};
const std::vector<std::string> kNeutral = {"film", "plot", "cast", "story", "music", "scene"};

const std::string& pick(const std::vector<std::string>& words, SplitMix64& rng) {
  return words[rng.below(words.size())];
}

std::vector<std::string> words_of(std::string_view text) {
  std::vector<std::string> out;
  std::string word;
  for (char c : text) {
    if (std::isalpha(static_cast<unsigned char>(c))) {
      word += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    } else if (!word.empty()) {
      out.push_back(word);
      word.clear();
    }
  }
  if (!word.empty()) out.push_back(word);
  return out;
}

bool contains(const std::vector<std::string>& words, const std::string& w) {
  return std::find(words.begin(), words.end(), w) != words.end();
}

TaskExample make_arithmetic(SplitMix64& rng) {
  const int a = static_cast<int>(rng.below(10));
  const int b = static_cast<int>(rng.below(10));
  return {"arithmetic", std::to_string(a) + "+" + std::to_string(b) + "=", std::to_string(a + b)};
}

TaskExample make_sentiment(SplitMix64& rng) {
  std::string answer =
      pick(kPositive, rng) + " " + pick(kNeutral, rng) + ", " + pick(kPositive, rng);
  return {"sentiment", "review, positive:", answer};
}

TaskExample make_reverse(SplitMix64& rng) {
  std::string word;
  const size_t len = 3 + rng.below(3);
  for (size_t i = 0; i < len; ++i) word += static_cast<char>('a' + rng.below(6));
  return {"reverse", "reverse " + word + ":", std::string(word.rbegin(), word.rend())};
}

double score_arithmetic(const TaskExample& ex, std::string_view response) {
  size_t i = 0;
  while (i < response.size() && response[i] == ' ') ++i;
  size_t j = i;
  while (j < response.size() && j - i < 9 && std::isdigit(static_cast<unsigned char>(response[j])))
    ++j;
  if (j == i) return 0.0;
  const long got = std::stol(std::string(response.substr(i, j - i)));
  const long want = std::stol(ex.answer);
  if (got == want) return 1.0;
  return 0.5 * std::exp(-std::abs(static_cast<double>(got - want)) / 10.0);
}

double score_sentiment(std::string_view response) {
  const auto words = words_of(response);
  if (words.empty()) return 0.0;
  double s = 0;
  for (const auto& w : words)
    s += contains(kPositive, w) ? 1.0 : contains(kNegative, w) ? -1.0 : 0.0;
  // Two net positive words earn full credit; two net negative ones nothing.
  return (std::clamp(s / 2.0, -1.0, 1.0) + 1.0) / 2.0;
}

double score_reverse(const TaskExample& ex, std::string_view response) {
  size_t i = 0;
  while (i < response.size() && response[i] == ' ') ++i;
  const std::string_view r = response.substr(i);
  size_t hits = 0;
  for (size_t k = 0; k < ex.answer.size() && k < r.size(); ++k) hits += r[k] == ex.answer[k];
  // Extra characters after the answer cost as much as wrong ones.
  const size_t extra = r.size() > ex.answer.size() ? r.size() - ex.answer.size() : 0;
  return static_cast<double>(hits) / static_cast<double>(ex.answer.size() + extra);
}

}  // namespace

SyntheticTasks::SyntheticTasks(const std::vector<std::string>& tasks, uint64_t seed) : seed_(seed) {
  const std::vector<std::string> all = {"arithmetic", "sentiment", "reverse"};
  for (const auto& t : tasks) {
    if (t == "mixed") {
      for (const auto& a : all) {
        if (!contains(categories_, a)) categories_.push_back(a);
      }
    } else {
      RUDDER_CHECK(contains(all, t), "unknown synthetic task '", t,
                   "' (expected arithmetic, sentiment, reverse or mixed)");
      if (!contains(categories_, t)) categories_.push_back(t);
    }
  }
  if (categories_.empty()) categories_ = all;
}

std::vector<TaskExample> SyntheticTasks::examples(size_t n, uint64_t split) const {
  SplitMix64 rng(seed_ * 0xD1B54A32D192ED03ull + split * 0x8CB92BA72F3D8DD7ull + 17);
  std::vector<TaskExample> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const std::string& category = categories_[rng.below(categories_.size())];
    if (category == "arithmetic")
      out.push_back(make_arithmetic(rng));
    else if (category == "sentiment")
      out.push_back(make_sentiment(rng));
    else
      out.push_back(make_reverse(rng));
  }
  return out;
}

double SyntheticTasks::score(const TaskExample& ex, std::string_view response) {
  if (ex.category == "arithmetic") return score_arithmetic(ex, response);
  if (ex.category == "sentiment") return score_sentiment(response);
  if (ex.category == "reverse") return score_reverse(ex, response);
  throw core::InvalidArgument(core::str("unknown synthetic category '", ex.category, "'"));
}

PreferencePair SyntheticTasks::preference(const TaskExample& ex, SplitMix64& rng) {
  PreferencePair p;
  p.prompt = ex.prompt;
  p.chosen = ex.answer;
  p.category = ex.category;
  if (ex.category == "arithmetic") {
    const long offset = 1 + static_cast<long>(rng.below(9));
    const long wrong = std::stol(ex.answer) + (rng.below(2) ? offset : -offset);
    p.rejected = std::to_string(wrong < 0 ? std::stol(ex.answer) + offset : wrong);
  } else if (ex.category == "sentiment") {
    p.rejected = pick(kNegative, rng) + " " + pick(kNeutral, rng) + ", " + pick(kNegative, rng);
  } else {
    std::string wrong = ex.answer;
    std::reverse(wrong.begin(), wrong.end());  // the word as given: not reversed
    if (wrong == ex.answer) wrong[0] = wrong[0] == 'a' ? 'b' : 'a';
    p.rejected = wrong;
  }
  p.margin = score(ex, p.chosen) - score(ex, p.rejected);
  return p;
}

RankedList SyntheticTasks::ranked(const TaskExample& ex, size_t size, SplitMix64& rng) {
  RUDDER_CHECK(size >= 2, "a ranked list needs at least 2 responses, got ", size);
  RankedList l;
  l.prompt = ex.prompt;
  l.category = ex.category;
  l.responses.push_back(ex.answer);
  while (l.responses.size() < size) l.responses.push_back(preference(ex, rng).rejected);
  std::vector<double> scores;
  for (const auto& r : l.responses) scores.push_back(score(ex, r));
  std::vector<double> distinct = scores;
  std::sort(distinct.begin(), distinct.end(), std::greater<>());
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
  for (double s : scores) {
    l.ranks.push_back(std::find(distinct.begin(), distinct.end(), s) - distinct.begin());
  }
  return l;
}

LabelledText SyntheticTasks::review(SplitMix64& rng) {
  LabelledText l;
  l.prompt = "review:";
  l.desired = rng.below(2) == 0;
  const auto& lexicon = l.desired ? kPositive : kNegative;
  l.text = pick(lexicon, rng) + " " + pick(kNeutral, rng) + ", " + pick(lexicon, rng);
  l.category = "sentiment";
  return l;
}

std::vector<LabelledText> SyntheticTasks::reviews(size_t n, uint64_t split) const {
  SplitMix64 rng(seed_ * 0x9E3779B97F4A7C15ull + split * 0xC2B2AE3D27D4EB4Full + 29);
  std::vector<LabelledText> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) out.push_back(review(rng));
  return out;
}

bool SyntheticTasks::is_positive(std::string_view text) { return score_sentiment(text) > 0.5; }

SftExample SyntheticTasks::sft(const TaskExample& ex) {
  return {ex.prompt, ex.answer, ex.category, {}};
}

}  // namespace rudder::data
