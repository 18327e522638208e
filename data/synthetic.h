// Synthetic tasks with a known ground truth, so improvement is measured, not claimed.
//
//   arithmetic  "7+8=" -> "15" (single digits)   score 1 if exact, else 0.5 exp(-|error| / 10)
//   sentiment   "review, positive:" -> "great film, fun"
//               score (clamp((pos - neg) / 2, -1, 1) + 1) / 2 over lexicon words (empty: 0)
//   reverse     "reverse abc:" -> "cba"          score = fraction of characters in place
//   mixed       all three, each example labelled with its category (for routed reward models)
//
// Each task makes SFT examples (prompt, correct answer), preference pairs (the answer against
// a corrupted one, scored lower by the ground truth) and held-out prompts.
//
// Capability dimensions (DMoERM's per-dimension labels), each scored in [0, 1] by ground truth:
//   correctness   the task's content: the sum, the sentiment, the letters in place
//   format        only the characters an answer uses (digits; lower-case words and commas)
//   length        length discipline: within one character of the answer's length, else decaying
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "data/dataset.h"
#include "data/sampler.h"

namespace rudder::data {

/// One generated task instance.
struct TaskExample {
  std::string category;  // arithmetic, sentiment or reverse
  std::string prompt;
  std::string answer;  // a response with the highest ground-truth score
};

/// The synthetic task mix.
class SyntheticTasks {
 public:
  /// `tasks`: any of arithmetic, sentiment, reverse, mixed (= all three); empty: mixed.
  /// Throws InvalidArgument for an unknown name.
  SyntheticTasks(const std::vector<std::string>& tasks, uint64_t seed);

  /// `n` examples of split `split` (0 train, 1 eval; other values are further disjoint
  /// streams). The same (seed, split, n) always gives the same examples.
  std::vector<TaskExample> examples(size_t n, uint64_t split) const;

  /// Ground-truth score of `response` to `example`, in [0, 1].
  static double score(const TaskExample& example, std::string_view response);

  /// A preference pair: the answer against a corrupted response with a lower score.
  static PreferencePair preference(const TaskExample& example, SplitMix64& rng);

  /// A ranked list: the answer and `size - 1` corrupted responses, ranked by ground truth (equal
  /// scores share a rank; 0 is the best). Throws InvalidArgument when size < 2.
  static RankedList ranked(const TaskExample& example, size_t size, SplitMix64& rng);

  /// The capability dimensions, in the order dimension_scores() gives them.
  static const std::vector<std::string>& dimensions();

  /// Ground-truth score of `response` on each dimension, in [0, 1], in dimensions() order.
  static std::vector<double> dimension_scores(const TaskExample& example,
                                              std::string_view response);

  /// A pair for dimension `dimension` (an index of dimensions()): the answer against a response
  /// corrupted on that dimension (scored lower on it). Throws InvalidArgument for a bad index.
  static PreferencePair dimension_preference(const TaskExample& example, size_t dimension,
                                             SplitMix64& rng);

  /// A review for class-conditional training and steering: prompt "review:" and a positive or a
  /// negative review (even odds), `desired` when positive; category "sentiment".
  static LabelledText review(SplitMix64& rng);

  /// `n` reviews of split `split` (as examples()): about half positive.
  std::vector<LabelledText> reviews(size_t n, uint64_t split) const;

  /// True when the ground truth calls `text` positive: more positive than negative lexicon words.
  static bool is_positive(std::string_view text);

  /// The example as SFT data.
  static SftExample sft(const TaskExample& example);

  /// The categories in use.
  const std::vector<std::string>& categories() const { return categories_; }

 private:
  std::vector<std::string> categories_;
  uint64_t seed_;
};

}  // namespace rudder::data
