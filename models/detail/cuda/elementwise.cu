// The kernels of elementwise.h: one thread per element pair (RoPE) or element (SwiGLU) in a
// grid-stride loop, values loaded in their stored type, computed in float32 and rounded once on
// the way out (round to nearest even, as libtorch converts).
#include "models/detail/cuda/elementwise.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>

namespace rudder::models::detail::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = int64_t{1} << 16;

// The operand's type is the same for every thread: the switch costs no divergence.
__device__ __forceinline__ float load(const void* data, Dtype dtype, int64_t i) {
  switch (dtype) {
    case Dtype::kBFloat16:
      return __bfloat162float(static_cast<const __nv_bfloat16*>(data)[i]);
    case Dtype::kHalf:
      return __half2float(static_cast<const __half*>(data)[i]);
    default:
      return static_cast<const float*>(data)[i];
  }
}

__device__ __forceinline__ void store(void* data, Dtype dtype, int64_t i, float v) {
  switch (dtype) {
    case Dtype::kBFloat16:
      static_cast<__nv_bfloat16*>(data)[i] = __float2bfloat16_rn(v);
      break;
    case Dtype::kHalf:
      static_cast<__half*>(data)[i] = __float2half_rn(v);
      break;
    default:
      static_cast<float*>(data)[i] = v;
  }
}

// f(n) for every n in [0, total), spread over the grid.
template <typename F>
__device__ __forceinline__ void grid_stride(int64_t total, F f) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t n = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; n < total;
       n += step)
    f(n);
}

__global__ void rotary_kernel(HeadRows x, HeadRows y, const float* __restrict__ cos,
                              const float* __restrict__ sin, int64_t rows, int64_t heads,
                              int64_t half, bool inverse) {
  grid_stride(rows * heads * half, [&](int64_t n) {
    const int64_t i = n % half, row_head = n / half;
    const int64_t h = row_head % heads, r = row_head / heads;
    const float c = cos[r * half + i], s = inverse ? -sin[r * half + i] : sin[r * half + i];
    const int64_t xi = r * x.row_stride + h * x.head_stride + i;
    const float x1 = load(x.data, x.dtype, xi), x2 = load(x.data, x.dtype, xi + half);
    const int64_t yi = r * y.row_stride + h * y.head_stride + i;
    store(y.data, y.dtype, yi, x1 * c - x2 * s);
    store(y.data, y.dtype, yi + half, x2 * c + x1 * s);
  });
}

__device__ __forceinline__ float sigmoid(float v) { return 1.0f / (1.0f + expf(-v)); }

// Element (r, c) of a Rows operand.
__device__ __forceinline__ int64_t at(const Rows& t, int64_t r, int64_t c) {
  return r * t.row_stride + c;
}

__global__ void swiglu_kernel(Rows gate, Rows up, Rows y, int64_t rows, int64_t width) {
  grid_stride(rows * width, [&](int64_t n) {
    const int64_t r = n / width, c = n % width;
    const float g = load(gate.data, gate.dtype, at(gate, r, c));
    store(y.data, y.dtype, at(y, r, c), g * sigmoid(g) * load(up.data, up.dtype, at(up, r, c)));
  });
}

__global__ void swiglu_backward_kernel(Rows dy, Rows gate, Rows up, Rows dgate, Rows dup,
                                       int64_t rows, int64_t width) {
  grid_stride(rows * width, [&](int64_t n) {
    const int64_t r = n / width, c = n % width;
    const float d = load(dy.data, dy.dtype, at(dy, r, c));
    const float g = load(gate.data, gate.dtype, at(gate, r, c));
    const float u = load(up.data, up.dtype, at(up, r, c));
    const float s = sigmoid(g);
    store(dgate.data, dgate.dtype, at(dgate, r, c), d * u * s * (1.0f + g * (1.0f - s)));
    store(dup.data, dup.dtype, at(dup, r, c), d * g * s);
  });
}

int blocks_for(int64_t total) {
  return static_cast<int>(
      std::max<int64_t>(1, std::min((total + kThreads - 1) / kThreads, kMaxBlocks)));
}

const char* launched() {
  const cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? nullptr : cudaGetErrorString(e);
}

}  // namespace

const char* rotary(const HeadRows& x, const HeadRows& y, const float* cos, const float* sin,
                   int64_t rows, int64_t heads, int64_t head_dim, bool inverse, void* stream) {
  const int64_t half = head_dim / 2, total = rows * heads * half;
  if (total == 0) return nullptr;
  rotary_kernel<<<blocks_for(total), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      x, y, cos, sin, rows, heads, half, inverse);
  return launched();
}

const char* swiglu(const Rows& gate, const Rows& up, const Rows& y, int64_t rows, int64_t width,
                   void* stream) {
  if (rows * width == 0) return nullptr;
  swiglu_kernel<<<blocks_for(rows * width), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      gate, up, y, rows, width);
  return launched();
}

const char* swiglu_backward(const Rows& dy, const Rows& gate, const Rows& up, const Rows& dgate,
                            const Rows& dup, int64_t rows, int64_t width, void* stream) {
  if (rows * width == 0) return nullptr;
  swiglu_backward_kernel<<<blocks_for(rows * width), kThreads, 0,
                           static_cast<cudaStream_t>(stream)>>>(dy, gate, up, dgate, dup, rows,
                                                                width);
  return launched();
}

}  // namespace rudder::models::detail::cuda
