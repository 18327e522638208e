// Rudder's own CUDA kernels for the element-wise parts of a Llama layer that libtorch runs as
// several kernels each: RoPE and SwiGLU, forward and backward, each one pass over its memory.
// Plain launchers over raw pointers (no libtorch here: nvcc never compiles torch's headers);
// models/detail/fused_elementwise.cpp wraps them as autograd functions. Compiled only where
// libtorch has CUDA (RUDDER_CUDA_KERNELS). Each returns nullptr once launched on `stream`, else
// CUDA's message for the failed launch.
#pragma once

#include <cstdint>

namespace rudder::models::detail::cuda {

/// The element types the kernels read and write; arithmetic is float32 throughout.
enum class Dtype { kFloat, kBFloat16, kHalf };

/// A [rows, heads, head_dim] operand: `data` at element (r, h, d) is
/// data[r * row_stride + h * head_stride + d].
struct HeadRows {
  void* data;
  Dtype dtype;
  int64_t row_stride, head_stride;
};

/// RoPE in Hugging Face's half-split layout over `rows` tokens of `heads` heads of `head_dim`
/// (even) values, each row r rotated by angles with cosines cos[r * half + i] and sines
/// sin[r * half + i] (float32, half = head_dim / 2):
///   forward (inverse false):  y1 = x1 c - x2 s,  y2 = x2 c + x1 s
///   backward (inverse true):  y1 = x1 c + x2 s,  y2 = x2 c - x1 s   (the transposed rotation)
/// where x1, x2 are the first and second halves of a head.
const char* rotary(const HeadRows& x, const HeadRows& y, const float* cos, const float* sin,
                   int64_t rows, int64_t heads, int64_t head_dim, bool inverse, void* stream);

/// A [rows, width] operand: element (r, c) at data[r * row_stride + c].
struct Rows {
  void* data;
  Dtype dtype;
  int64_t row_stride;
};

/// SwiGLU's product: y = silu(g) * u = g sigmoid(g) u. Here and in the backward every operand has
/// one element type; operands that differ are refused with a message.
const char* swiglu(const Rows& gate, const Rows& up, const Rows& y, int64_t rows, int64_t width,
                   void* stream);

/// Its backward from dy: dg = dy u s (1 + g (1 - s)) with s = sigmoid(g), du = dy g s.
const char* swiglu_backward(const Rows& dy, const Rows& gate, const Rows& up, const Rows& dgate,
                            const Rows& dup, int64_t rows, int64_t width, void* stream);

}  // namespace rudder::models::detail::cuda
