// Inference for a CausalLM at decoding speed: an immutable snapshot of its weights with the
// projections that read one input fused (q, k and v; gate and up), and a KV cache preallocated
// for a fixed number of slots and written in place.
//
// A slot holds one sequence, left-aligned: its length is the position of its next token, so no
// row carries padding. prefill() appends a run of tokens to one slot; step() appends one token
// to each of the slots 0..n-1 at once, which is why callers keep their live sequences in the
// lowest slots (copy() moves one). The results match CausalLM::forward on the same tokens
// within float rounding.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <ATen/core/Tensor.h>

#include "models/model_spec.h"

namespace rudder::models {

class CausalLM;

/// The fused weights of a model at one moment (LoRA adapters folded in), on the model's device
/// and in its dtype. Immutable once built, so any number of Decoders may share one.
class DecoderWeights {
 public:
  /// Snapshots `model`'s current parameters; later changes to the model do not reach it. With
  /// `pack`, float32 weights on a CPU with AVX-512 keep their layer projections and output head
  /// in the layout of detail::PackedMatrix, which a decode step of 8 rows reads about 2.7x
  /// faster than BLAS reads [out, in] (BLAS repacks the weight on every call); otherwise they
  /// stay [out, in] matrices (detail::small_matmul up to 4 rows, BLAS above). A head that is
  /// the embedding itself (GPT-2) stays [out, in].
  explicit DecoderWeights(const CausalLM& model, bool pack = true);
  ~DecoderWeights();

  /// The sizes of the snapshotted model.
  const ModelSpec& spec() const;
  /// The dtype and device of the weights.
  at::TensorOptions options() const;
  /// Whether the layer projections (and a head of its own) are packed (see the constructor).
  bool packed() const { return packed_; }

  struct Impl;
  const Impl& impl() const { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
  bool packed_ = false;
};

/// How Decoder::step computes a decode step.
enum class StepPath {
  /// kGraphed on a CUDA device where CUDA graphs are available (detail::StepGraphs), kStatic on
  /// another device, kFused on the CPU where it applies, else kEager.
  kAuto,
  /// Operation by operation, shaped by the host's lengths: the positions go to the device every
  /// step, and the keys attended are exactly the longest row's.
  kEager,
  /// A float32 Llama without biases on the CPU: every intermediate in buffers kept across steps,
  /// attention and RoPE by Rudder's kernels.
  kFused,
  /// Fixed shapes (the rows, and the keys attended rounded up to a power-of-two window, masked
  /// per row) with the token ids, positions and lengths kept on the device and the logits
  /// written to a buffer: nothing in the step waits for the host.
  kStatic,
  /// kStatic captured into a CUDA graph per shape and replayed after (CUDA devices only).
  kGraphed,
};

/// A KV cache of `slots` sequences of up to `max_length` tokens, and the forward passes that
/// fill it. Not thread-safe: one thread drives a Decoder. Runs without gradients.
class Decoder {
 public:
  /// Allocates the cache (with kFused, memory is touched only as slots fill). Throws
  /// InvalidArgument when slots or max_length is not positive, max_length exceeds the model's
  /// positions, or `path` does not apply to the weights (kFused off the CPU or for another model,
  /// kGraphed without CUDA graphs).
  Decoder(std::shared_ptr<const DecoderWeights> weights, int64_t slots, int64_t max_length,
          StepPath path = StepPath::kAuto);
  ~Decoder();
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;

  int64_t slots() const { return slots_; }
  int64_t max_length() const { return max_length_; }
  /// Tokens held by `slot`; also the position of its next token.
  int64_t length(int64_t slot) const;
  /// How step() computes (never kAuto: what kAuto chose for these weights).
  StepPath step_path() const { return path_; }
  /// CUDA graphs of the step held (kGraphed: one per number of rows and key window seen since
  /// the weights were set; none after a capture failed, when the step runs without them).
  size_t step_graphs() const;
  /// The weights in use.
  const std::shared_ptr<const DecoderWeights>& weights() const { return weights_; }
  /// Replaces the weights; every slot must be empty (throws InvalidArgument otherwise). The new
  /// model must have the old one's sizes, dtype and device.
  void set_weights(std::shared_ptr<const DecoderWeights> weights);

  /// Appends `tokens` [T] (int64, any device) to `slot`. Returns the logits [T, vocab] of every
  /// appended position when `all_logits`, else [1, vocab] of the last. Throws InvalidArgument
  /// when the slot would exceed max_length.
  at::Tensor prefill(int64_t slot, const at::Tensor& tokens, bool all_logits);

  /// Appends `tokens` [T] to `slot` and returns the log-probabilities [N] of targets[j] (N
  /// targets, int64) after the appended position first + j, read from the final hidden states
  /// a chunk of tokens at a time (models::chunked_token_scores, or its chunks through a packed
  /// head): the [T, vocab] logits never exist. Throws InvalidArgument for targets outside positions
  /// [first, T).
  at::Tensor prefill_logprobs(int64_t slot, const at::Tensor& tokens, int64_t first,
                              const at::Tensor& targets);

  /// Appends tokens[j] to slots[j] for every j in one pass (the projections see every run's
  /// tokens at once); returns the logits [runs, vocab] of each run's last token. The slots must
  /// differ. Throws InvalidArgument, changing nothing, when a slot would exceed max_length.
  at::Tensor prefill(const std::vector<int64_t>& slots, const std::vector<at::Tensor>& tokens);

  /// Appends tokens[i] to slot i for i < n = tokens.size(0) (one decode step of a batch);
  /// returns the logits [n, vocab] of the appended positions. With kStatic and kGraphed, tokens
  /// on the host are staged through pinned memory and nothing waits for the device.
  at::Tensor step(const at::Tensor& tokens);

  /// Makes `dst` a copy of `src` (its tokens and length); `src` is unchanged.
  void copy(int64_t src, int64_t dst);
  /// Empties `slot`.
  void clear(int64_t slot);
  /// Keeps the first `length` tokens of `slot` (a shorter length drops the rest).
  void truncate(int64_t slot, int64_t length);

 private:
  void check_slot(int64_t slot) const;
  at::Tensor prefill_hidden(const std::vector<int64_t>& slots,
                            const std::vector<at::Tensor>& tokens);
  StepPath resolve(StepPath requested) const;
  void zero_cache();
  at::Tensor step_eager(const at::Tensor& tokens, int64_t n, int64_t longest);
  at::Tensor step_fused(const at::Tensor& ids, int64_t n);
  at::Tensor step_static(const at::Tensor& tokens, int64_t n, int64_t longest);
  void static_step(int64_t n, int64_t window);

  std::shared_ptr<const DecoderWeights> weights_;
  int64_t slots_;
  int64_t max_length_;
  StepPath requested_, path_;
  std::vector<int64_t> lengths_;  // per slot, on the host
  struct Cache;
  std::unique_ptr<Cache> cache_;
};

}  // namespace rudder::models
