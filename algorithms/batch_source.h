// Where the loop's batches come from. A dataset source hands out rows of a fixed training set in
// a seeded, resumable order; an on-policy source (on_policy_source.h) draws prompts the same way
// and generates and scores samples with the current policy for each batch.
//
// State: the data position (global, the same on every rank) and each rank's own generators
// (rank_state) go into checkpoints, so a resumed run draws exactly what the uninterrupted one did.
#pragma once

#include <cstdint>
#include <string>

#include "algorithms/batch.h"
#include "data/sampler.h"
#include "models/safetensors.h"

namespace rudder::algorithms {

/// Makes batches for the loop.
class BatchSource {
 public:
  virtual ~BatchSource() = default;

  /// Rows one epoch covers (the loop counts steps from `training.epochs` with it).
  virtual uint64_t epoch_size() const = 0;

  /// Checks that `global_batch` rows split evenly: `micro_batch` items per micro-batch and
  /// `world_size` ranks. Throws InvalidArgument naming the settings.
  virtual void check_batching(uint64_t global_batch, uint64_t micro_batch, int world_size) const;

  /// This rank's share of the next `global_batch` rows. Every rank calls it once per batch.
  virtual Batch next(uint64_t global_batch, int rank, int world_size) = 0;

  /// Where the row order is (the same on every rank).
  virtual data::SamplerPosition position() const = 0;
  virtual void set_position(data::SamplerPosition position) = 0;

  /// This rank's generators and other per-rank state (empty for a dataset source).
  virtual models::TensorMap rank_state() const { return {}; }
  /// Restores rank_state(); throws InvalidArgument naming `source` when something is missing.
  virtual void load_rank_state(const models::TensorMap& /*state*/, const std::string& /*source*/) {}
};

/// Rows 0..size-1 of a training set, epoch after epoch (shuffled per epoch when asked).
class DatasetSource : public BatchSource {
 public:
  DatasetSource(uint64_t size, uint64_t seed, bool shuffle);

  uint64_t epoch_size() const override { return sampler_.size(); }
  Batch next(uint64_t global_batch, int rank, int world_size) override;
  data::SamplerPosition position() const override { return sampler_.position(); }
  void set_position(data::SamplerPosition position) override { sampler_.set_position(position); }

 private:
  data::EpochSampler sampler_;
};

/// Rows [rank * n / world, (rank + 1) * n / world) of `rows` (n a multiple of `world_size`).
std::vector<uint64_t> rank_share(const std::vector<uint64_t>& rows, int rank, int world_size);

}  // namespace rudder::algorithms
