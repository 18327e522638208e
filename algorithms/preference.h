// Tokenized preference pairs shared by the methods that learn from them (DPO family, reward
// models) and the one concatenated forward they use.
#pragma once

#include <vector>

#include "data/collate.h"
#include "data/synthetic.h"

namespace rudder::algorithms {

/// Pairs as parallel lists.
struct PreferenceRows {
  std::vector<data::TokenizedPair> chosen;
  std::vector<data::TokenizedPair> rejected;
  std::vector<double> margins;          // per-pair margin (0 when the data has none)
  std::vector<std::string> categories;  // per-pair category ("" when the data has none)
  size_t size() const { return chosen.size(); }
};

/// Ranked lists, tokenized: list i's responses (each with its prompt) and their ranks (smaller
/// is better).
struct RankedRows {
  std::vector<std::vector<data::TokenizedPair>> lists;
  std::vector<std::vector<int64_t>> ranks;
  size_t size() const { return lists.size(); }
};

/// Training and held-out pairs, and held-out task prompts with ground truth (may be empty).
struct PreferenceData {
  PreferenceRows train;
  PreferenceRows eval;
  std::vector<data::TaskExample> eval_tasks;
};

/// Chosen rows of `indices` followed by their rejected rows, in one right-padded batch
/// ([2B, T]): one forward computes both halves.
data::Batch collate_pairs(const PreferenceRows& rows, const std::vector<uint64_t>& indices,
                          int64_t pad_id);

/// Indices 0..n-1.
std::vector<uint64_t> all_indices(size_t n);

}  // namespace rudder::algorithms
