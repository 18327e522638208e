#include "algorithms/preference.h"

#include <numeric>

namespace rudder::algorithms {

data::Batch collate_pairs(const PreferenceRows& rows, const std::vector<uint64_t>& indices,
                          int64_t pad_id) {
  std::vector<data::TokenizedPair> batch;
  batch.reserve(2 * indices.size());
  for (uint64_t i : indices) batch.push_back(rows.chosen[i]);
  for (uint64_t i : indices) batch.push_back(rows.rejected[i]);
  return data::collate(batch, pad_id);
}

std::vector<uint64_t> all_indices(size_t n) {
  std::vector<uint64_t> out(n);
  std::iota(out.begin(), out.end(), 0);
  return out;
}

}  // namespace rudder::algorithms
