// The per-row operations of a Llama decode step done in place on float32 buffers (CPU): the
// weightless RMSNorm, RoPE on interleaved pairs and the KV cache write. At decoding sizes each
// is a few microseconds of arithmetic, which the tensor operations they replace spent mostly
// on dispatch and allocation.
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

namespace rudder::models::detail {

/// out[m] = x[m] * rsqrt(mean(x[m]^2) + eps) for the n rows [n, width] of x (Zhang & Sennrich
/// 2019, eq. 4, with the gain folded into the next projection). out may be x.
void rms_norm_rows(const float* x, int64_t n, int64_t width, float eps, float* out);

/// Rotates `heads` heads [D] (interleaved pairs 2i, 2i + 1) at the start of each of the n rows
/// of qkv (rows `stride` floats apart) by rope[positions[m]] [D/2] (complex float) (Su et al.
/// 2021, eq. 34).
void rope_rows(float* qkv, int64_t n, int64_t stride, int64_t heads, int64_t head_dim,
               const float* rope, const std::vector<int64_t>& positions);

/// Copies row m's keys and values (Hkv heads each, contiguous at kv + m * stride) into `cache`
/// [slots, Hkv, 2, max_length, D] at slot m, position positions[m].
void write_kv_rows(const float* kv, int64_t n, int64_t stride, const at::Tensor& cache,
                   const std::vector<int64_t>& positions);

}  // namespace rudder::models::detail
