// The kernels of elementwise.h. Each thread reads V consecutive values of every operand in one
// load (16 bytes where the operands' alignment and steps allow, fewer where not), computes in
// float32 and rounds once on the way out (round to nearest even, as libtorch converts). A block's
// threads span a row (blockDim.x) and, where rows are short, several rows (blockDim.y); the grid's
// x dimension covers the rest of a row and its y dimension walks the rows, so no thread divides a
// flat index per element. These kernels only move memory: loads of 16 bytes bring them near the
// card's bandwidth, where one value per thread and 64-bit index division kept them at a quarter.
#include "models/detail/cuda/elementwise.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <initializer_list>
#include <type_traits>

namespace rudder::models::detail::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxGridY = 65535;  // CUDA's limit on gridDim.y

__host__ __device__ __forceinline__ float to_float(float v) { return v; }
__host__ __device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
__host__ __device__ __forceinline__ float to_float(__half v) { return __half2float(v); }

template <typename T>
__host__ __device__ __forceinline__ T from_float(float v);
template <>
__host__ __device__ __forceinline__ float from_float<float>(float v) {
  return v;
}
template <>
__host__ __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}
template <>
__host__ __device__ __forceinline__ __half from_float<__half>(float v) {
  return __float2half_rn(v);
}

// V values of type T moved as one load or store.
template <typename T, int V>
struct alignas(sizeof(T) * V) Pack {
  T v[V];
};

template <int V, typename T>
__host__ __device__ __forceinline__ void load(const T* p, float (&out)[V]) {
  const Pack<T, V> pack = *reinterpret_cast<const Pack<T, V>*>(p);
#pragma unroll
  for (int k = 0; k < V; ++k) out[k] = to_float(pack.v[k]);
}

template <int V, typename T>
__host__ __device__ __forceinline__ void store(T* p, const float (&in)[V]) {
  Pack<T, V> pack;
#pragma unroll
  for (int k = 0; k < V; ++k) pack.v[k] = from_float<T>(in[k]);
  *reinterpret_cast<Pack<T, V>*>(p) = pack;
}

template <typename T>
__host__ __device__ __forceinline__ T* element(const Rows& t, int64_t r, int64_t c) {
  return static_cast<T*>(t.data) + r * t.row_stride + c;
}

template <typename T>
__host__ __device__ __forceinline__ T* element(const HeadRows& t, int64_t r, int64_t h, int64_t i) {
  return static_cast<T*>(t.data) + r * t.row_stride + h * t.head_stride + i;
}

// f(r, v) for this thread's vector v of a row (of `vectors`), for every row r the thread takes.
template <typename F>
__device__ __forceinline__ void for_rows(int64_t rows, int64_t vectors, F f) {
  const int64_t v = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (v >= vectors) return;
  const int64_t step = static_cast<int64_t>(gridDim.y) * blockDim.y;
  for (int64_t r = static_cast<int64_t>(blockIdx.y) * blockDim.y + threadIdx.y; r < rows; r += step)
    f(r, v);
}

__host__ __device__ __forceinline__ float sigmoid(float v) { return 1.0f / (1.0f + expf(-v)); }

template <typename In, typename Out, int V>
__global__ void rotary_kernel(HeadRows x, HeadRows y, const float* __restrict__ cos,
                              const float* __restrict__ sin, int64_t rows, int64_t heads,
                              int64_t half, bool inverse) {
  const int64_t per_head = half / V;
  for_rows(rows, heads * per_head, [&](int64_t r, int64_t v) {
    const int64_t h = v / per_head, i = v % per_head * V;
    float x1[V], x2[V], y1[V], y2[V];
    const In* from = element<In>(x, r, h, i);
    load<V>(from, x1);
    load<V>(from + half, x2);
#pragma unroll
    for (int k = 0; k < V; ++k) {
      const float c = cos[r * half + i + k],
                  s = inverse ? -sin[r * half + i + k] : sin[r * half + i + k];
      y1[k] = x1[k] * c - x2[k] * s;
      y2[k] = x2[k] * c + x1[k] * s;
    }
    Out* to = element<Out>(y, r, h, i);
    store<V>(to, y1);
    store<V>(to + half, y2);
  });
}

template <typename T, int V>
__global__ void swiglu_kernel(Rows gate, Rows up, Rows y, int64_t rows, int64_t width) {
  for_rows(rows, width / V, [&](int64_t r, int64_t v) {
    float g[V], u[V], out[V];
    load<V>(element<const T>(gate, r, v * V), g);
    load<V>(element<const T>(up, r, v * V), u);
#pragma unroll
    for (int k = 0; k < V; ++k) out[k] = g[k] * sigmoid(g[k]) * u[k];
    store<V>(element<T>(y, r, v * V), out);
  });
}

template <typename T, int V>
__global__ void swiglu_backward_kernel(Rows dy, Rows gate, Rows up, Rows dgate, Rows dup,
                                       int64_t rows, int64_t width) {
  for_rows(rows, width / V, [&](int64_t r, int64_t v) {
    float d[V], g[V], u[V], dg[V], du[V];
    load<V>(element<const T>(dy, r, v * V), d);
    load<V>(element<const T>(gate, r, v * V), g);
    load<V>(element<const T>(up, r, v * V), u);
#pragma unroll
    for (int k = 0; k < V; ++k) {
      const float s = sigmoid(g[k]);
      dg[k] = d[k] * u[k] * s * (1.0f + g[k] * (1.0f - s));
      du[k] = d[k] * g[k] * s;
    }
    store<V>(element<T>(dgate, r, v * V), dg);
    store<V>(element<T>(dup, r, v * V), du);
  });
}

int bytes_of(Dtype d) { return d == Dtype::kFloat ? 4 : 2; }

// An operand as the vector width sees it: where it starts, how wide its values are.
struct Operand {
  const void* data;
  Dtype dtype;
};

// The most values per load (a power of two, at most 16 bytes of the widest operand) that every
// operand's start and every step in `steps` (row and head strides, widths) allow.
int vector_width(std::initializer_list<Operand> operands, std::initializer_list<int64_t> steps) {
  int widest = 1;
  for (const Operand& o : operands) widest = std::max(widest, bytes_of(o.dtype));
  for (int v = 16 / widest; v > 1; v /= 2) {
    bool fits = true;
    for (const Operand& o : operands)
      fits = fits && reinterpret_cast<uintptr_t>(o.data) % (v * bytes_of(o.dtype)) == 0;
    for (const int64_t s : steps) fits = fits && s % v == 0;
    if (fits) return v;
  }
  return 1;
}

// Calls f with a value of the C++ type of `d` (its type is what f uses).
template <typename F>
const char* with_type(Dtype d, F f) {
  switch (d) {
    case Dtype::kBFloat16:
      return f(__nv_bfloat16{});
    case Dtype::kHalf:
      return f(__half{});
    default:
      return f(float{});
  }
}

// Calls f with std::integral_constant<int, v> for v in 8, 4, 2, 1.
template <typename F>
const char* with_width(int v, F f) {
  switch (v) {
    case 8:
      return f(std::integral_constant<int, 8>{});
    case 4:
      return f(std::integral_constant<int, 4>{});
    case 2:
      return f(std::integral_constant<int, 2>{});
    default:
      return f(std::integral_constant<int, 1>{});
  }
}

// The grid and blocks for `vectors` per row over `rows` rows: blockDim.x a multiple of 32 up to
// kThreads across a row, blockDim.y the rows a block takes with the threads left.
struct Launch {
  dim3 grid, block;
};

Launch launch_for(int64_t vectors, int64_t rows) {
  const int across = static_cast<int>(std::min<int64_t>(kThreads, (vectors + 31) / 32 * 32));
  const int down = kThreads / across;
  const int64_t grid_x = (vectors + across - 1) / across;
  const int64_t grid_y = std::min((rows + down - 1) / down, kMaxGridY);
  return {dim3(static_cast<unsigned>(grid_x), static_cast<unsigned>(grid_y)), dim3(across, down)};
}

const char* launched() {
  const cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? nullptr : cudaGetErrorString(e);
}

}  // namespace

const char* rotary(const HeadRows& x, const HeadRows& y, const float* cos, const float* sin,
                   int64_t rows, int64_t heads, int64_t head_dim, bool inverse, void* stream) {
  const int64_t half = head_dim / 2;
  if (rows * heads * half == 0) return nullptr;
  const int v = vector_width({{x.data, x.dtype}, {y.data, y.dtype}},
                             {half, x.row_stride, x.head_stride, y.row_stride, y.head_stride});
  const Launch l = launch_for(heads * (half / v), rows);
  return with_type(x.dtype, [&](auto in) {
    return with_type(y.dtype, [&](auto out) {
      return with_width(v, [&](auto width) {
        rotary_kernel<decltype(in), decltype(out), decltype(width)::value>
            <<<l.grid, l.block, 0, static_cast<cudaStream_t>(stream)>>>(x, y, cos, sin, rows, heads,
                                                                        half, inverse);
        return launched();
      });
    });
  });
}

const char* swiglu(const Rows& gate, const Rows& up, const Rows& y, int64_t rows, int64_t width,
                   void* stream) {
  if (rows * width == 0) return nullptr;
  if (up.dtype != gate.dtype || y.dtype != gate.dtype) return "SwiGLU's operands differ in type";
  const int v = vector_width({{gate.data, gate.dtype}, {up.data, up.dtype}, {y.data, y.dtype}},
                             {width, gate.row_stride, up.row_stride, y.row_stride});
  const Launch l = launch_for(width / v, rows);
  return with_type(gate.dtype, [&](auto type) {
    return with_width(v, [&](auto w) {
      swiglu_kernel<decltype(type), decltype(w)::value>
          <<<l.grid, l.block, 0, static_cast<cudaStream_t>(stream)>>>(gate, up, y, rows, width);
      return launched();
    });
  });
}

const char* swiglu_backward(const Rows& dy, const Rows& gate, const Rows& up, const Rows& dgate,
                            const Rows& dup, int64_t rows, int64_t width, void* stream) {
  if (rows * width == 0) return nullptr;
  for (const Rows* t : {&dy, &up, &dgate, &dup})
    if (t->dtype != gate.dtype) return "SwiGLU backward's operands differ in type";
  const int v = vector_width(
      {{dy.data, dy.dtype},
       {gate.data, gate.dtype},
       {up.data, up.dtype},
       {dgate.data, dgate.dtype},
       {dup.data, dup.dtype}},
      {width, dy.row_stride, gate.row_stride, up.row_stride, dgate.row_stride, dup.row_stride});
  const Launch l = launch_for(width / v, rows);
  return with_type(gate.dtype, [&](auto type) {
    return with_width(v, [&](auto w) {
      swiglu_backward_kernel<decltype(type), decltype(w)::value>
          <<<l.grid, l.block, 0, static_cast<cudaStream_t>(stream)>>>(dy, gate, up, dgate, dup,
                                                                      rows, width);
      return launched();
    });
  });
}

}  // namespace rudder::models::detail::cuda
