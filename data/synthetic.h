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

  /// The example as SFT data.
  static SftExample sft(const TaskExample& example);

  /// The categories in use.
  const std::vector<std::string>& categories() const { return categories_; }

 private:
  std::vector<std::string> categories_;
  uint64_t seed_;
};

}  // namespace rudder::data
