#include "algorithms/batch_source.h"

#include "core/error.h"

namespace rudder::algorithms {

void BatchSource::check_batching(uint64_t global_batch, uint64_t micro_batch,
                                 int world_size) const {
  const uint64_t per_rank_multiple = micro_batch * static_cast<uint64_t>(world_size);
  RUDDER_CHECK(global_batch % per_rank_multiple == 0, "training.global_batch_size (", global_batch,
               ") must be a multiple of micro_batch_size (", micro_batch, ") x world size (",
               world_size, ")");
}

std::vector<uint64_t> rank_share(const std::vector<uint64_t>& rows, int rank, int world_size) {
  RUDDER_ASSERT(world_size > 0 && rows.size() % static_cast<size_t>(world_size) == 0);
  const size_t per_rank = rows.size() / static_cast<size_t>(world_size);
  return {rows.begin() + static_cast<ptrdiff_t>(rank * per_rank),
          rows.begin() + static_cast<ptrdiff_t>((rank + 1) * per_rank)};
}

DatasetSource::DatasetSource(uint64_t size, uint64_t seed, bool shuffle)
    : sampler_(size, seed, shuffle) {}

Batch DatasetSource::next(uint64_t global_batch, int rank, int world_size) {
  Batch b;
  b.examples = rank_share(sampler_.next(global_batch), rank, world_size);
  return b;
}

}  // namespace rudder::algorithms
