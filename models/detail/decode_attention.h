// Attention of one new token per sequence against its cached keys and values (the decode
// step), as one pass over the cache per (sequence, kv head): scores, softmax and the weighted
// sum of values without intermediate tensors. Batched matrix products cost one BLAS call per
// (sequence, head) here, which dominates decoding at batch 8 and beyond. CPU, float32.
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

namespace rudder::models::detail {

/// Whether decode_attention handles queries like `like` (its dtype and device) against `cache`:
/// CPU float32, the cache contiguous.
bool decode_attention_applies(const at::Tensor& like, const at::Tensor& cache);

/// q [n, Hkv, G, D] (query head h = kv head h / G, as grouped-query attention reads them);
/// cache [slots, Hkv, 2, max_length, D] (keys at [:, :, 0], values at [:, :, 1]); row b attends
/// to positions 0..lengths[b] - 1 with scores scaled by `scale`, softmax in float32. Returns
/// [n, Hkv * G * D].
at::Tensor decode_attention(const at::Tensor& q, const at::Tensor& cache,
                            const std::vector<int64_t>& lengths, double scale);

/// The same on float32 buffers: the n query rows `q_stride` floats apart (each [Hkv, G, D],
/// so that q may be a slice of a fused projection's output), the output `out` [n, Hkv G D].
void decode_attention_into(const float* q, int64_t q_stride, int64_t n, int64_t groups,
                           const at::Tensor& cache, const std::vector<int64_t>& lengths,
                           double scale, float* out);

}  // namespace rudder::models::detail
