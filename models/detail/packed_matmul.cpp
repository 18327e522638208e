#include "models/detail/packed_matmul.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "core/error.h"

namespace rudder::models::detail {
namespace {

constexpr int64_t kPanel = PackedMatrix::kPanel;

// A panel's slice of kDepth inputs (kDepth x 32 floats, 16 KiB) stays in L1 while the row
// tiles of the chunk pass over it.
constexpr int64_t kDepth = 128;
// Rows of x transposed at a time: short strides between a tile's rows, and for hidden sizes
// up to a few thousand a chunk of x that stays in L2 while the panels stream past.
constexpr int64_t kRowChunk = 96;
constexpr int kTileRows = 12;

#if defined(__x86_64__)

// Masks of the valid outputs of a panel's two 16-wide halves when it has `cols` < 32 of them.
struct Masks {
  __mmask16 lo, hi;
};

Masks masks_for(int64_t cols) {
  const auto bits = [](int64_t n) {
    return static_cast<__mmask16>(n >= 16 ? 0xFFFF : n <= 0 ? 0 : (1u << n) - 1);
  };
  return {bits(cols), bits(cols - 16)};
}

// y[r, 0:32] (+)= sum over k < depth of xt[k * ldx + r] * panel[k, 0:32], for r < MR. Every
// row adds its products in the same order whatever MR is, so a row's result does not depend
// on the rows beside it (a request decodes the same tokens in any batch). With one row the
// two chains of multiply-adds still read faster than memory delivers the panel.
template <int MR>
__attribute__((target("avx512f"), always_inline)) inline void tile(const float* xt, int64_t ldx,
                                                                   const float* panel,
                                                                   int64_t depth, float* y,
                                                                   int64_t ldy, Masks m,
                                                                   bool accumulate) {
  __m512 lo[MR], hi[MR];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) lo[r] = hi[r] = _mm512_setzero_ps();
  for (int64_t k = 0; k < depth; ++k) {
    const float* w = panel + k * kPanel;
    const __m512 w0 = _mm512_loadu_ps(w), w1 = _mm512_loadu_ps(w + 16);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const __m512 xb = _mm512_set1_ps(xt[k * ldx + r]);
      lo[r] = _mm512_fmadd_ps(xb, w0, lo[r]);
      hi[r] = _mm512_fmadd_ps(xb, w1, hi[r]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
    float* out = y + r * ldy;
    if (accumulate) {
      lo[r] = _mm512_add_ps(lo[r], _mm512_maskz_loadu_ps(m.lo, out));
      hi[r] = _mm512_add_ps(hi[r], _mm512_maskz_loadu_ps(m.hi, out + 16));
    }
    _mm512_mask_storeu_ps(out, m.lo, lo[r]);
    _mm512_mask_storeu_ps(out + 16, m.hi, hi[r]);
  }
}

// One panel (its first `cols` of 32 outputs) for the `rows` rows of a chunk of x transposed,
// xt [in, rows].
__attribute__((target("avx512f"))) void panel_rows(const float* xt, int64_t rows, int64_t in,
                                                   const float* panel, int64_t cols, float* y,
                                                   int64_t ldy, bool accumulate) {
  const Masks m = masks_for(cols);
  for (int64_t k0 = 0; k0 < in; k0 += kDepth) {
    const int64_t depth = std::min(kDepth, in - k0);
    const bool add = accumulate || k0 > 0;
    const float* w = panel + k0 * kPanel;
    const float* x = xt + k0 * rows;
    int64_t r = 0;
    for (; r + kTileRows <= rows; r += kTileRows) {
      tile<kTileRows>(x + r, rows, w, depth, y + r * ldy, ldy, m, add);
    }
    if (r < rows) {
      using Tile =
          void (*)(const float*, int64_t, const float*, int64_t, float*, int64_t, Masks, bool);
      static constexpr Tile kTiles[kTileRows] = {nullptr, tile<1>, tile<2>,  tile<3>,
                                                 tile<4>, tile<5>, tile<6>,  tile<7>,
                                                 tile<8>, tile<9>, tile<10>, tile<11>};
      kTiles[rows - r](x + r, rows, w, depth, y + r * ldy, ldy, m, add);
    }
  }
}

#else

// Never called: no PackedMatrix is built where supported() is false.
void panel_rows(const float*, int64_t, int64_t, const float*, int64_t, float*, int64_t, bool) {
  RUDDER_ASSERT(false, "the packed kernel needs x86-64 with AVX-512F");
}

#endif  // __x86_64__

}  // namespace

bool PackedMatrix::supported() {
#if defined(__x86_64__)
  static const bool yes = __builtin_cpu_supports("avx512f");
  return yes;
#else
  return false;
#endif
}

PackedMatrix::PackedMatrix(const at::Tensor& weight) {
  RUDDER_CHECK(supported(), "PackedMatrix needs a CPU with AVX-512F");
  RUDDER_CHECK(weight.defined() && weight.dim() == 2 && weight.is_cpu() &&
                   weight.scalar_type() == at::kFloat,
               "PackedMatrix packs a 2-d float32 CPU weight, got ",
               weight.defined() ? weight.toString() : std::string("an undefined tensor"));
  out_ = weight.size(0);
  in_ = weight.size(1);
  const int64_t panels = (out_ + kPanel - 1) / kPanel, whole = out_ / kPanel;
  panels_ = huge_page_floats(panels * in_ * kPanel).view({panels, in_, kPanel});
  // Panel p holds weight rows p * 32 .. p * 32 + 31 transposed, [in, 32]; the last one is
  // zero past `out`.
  panels_.narrow(0, 0, whole)
      .copy_(weight.narrow(0, 0, whole * kPanel).view({whole, kPanel, in_}).transpose(1, 2));
  if (whole < panels) {
    at::Tensor last = panels_.select(0, whole);  // [in, 32]
    last.zero_();
    last.narrow(1, 0, out_ - whole * kPanel)
        .copy_(weight.narrow(0, whole * kPanel, out_ - whole * kPanel).t());
  }
}

void PackedMatrix::matmul_out(const at::Tensor& x_in, at::Tensor& y, bool accumulate) const {
  RUDDER_CHECK(defined(), "matmul_out on an empty PackedMatrix");
  RUDDER_CHECK(
      x_in.dim() == 2 && x_in.size(1) == in_ && x_in.is_cpu() && x_in.scalar_type() == at::kFloat,
      "PackedMatrix [", out_, ", ", in_, "] cannot multiply x ", x_in.sizes());
  const int64_t M = x_in.size(0);
  RUDDER_CHECK(
      y.dim() == 2 && y.size(0) == M && y.size(1) == out_ && y.is_cpu() &&
          y.scalar_type() == at::kFloat && y.stride(1) == 1 && (M <= 1 || y.stride(0) >= out_),
      "PackedMatrix output must be float32 CPU [", M, ", ", out_, "] with contiguous rows, got ",
      y.toString(), " ", y.sizes(), " strides ", y.strides());
  const at::Tensor x = x_in.stride(1) == 1 ? x_in : x_in.contiguous();
  if (M == 0) return;
  {
    const auto* xb = static_cast<const char*>(x.data_ptr());
    const auto* yb = static_cast<const char*>(y.data_ptr());
    const auto* x_end = xb + ((M - 1) * x.stride(0) + in_) * sizeof(float);
    const auto* y_end = yb + ((M - 1) * y.stride(0) + out_) * sizeof(float);
    RUDDER_CHECK(x_end <= yb || y_end <= xb, "PackedMatrix output overlaps its input");
  }
  if (in_ == 0) {
    if (!accumulate) y.zero_();
    return;
  }
  const int64_t ldx = x.stride(0), ldy = y.stride(0), panels = panels_.size(0);
  const float* x_data = x.data_ptr<float>();
  const float* w_data = panels_.data_ptr<float>();
  float* y_data = y.data_ptr<float>();
  thread_local std::vector<float> transposed;  // [in, rows] of the current chunk
  for (int64_t m0 = 0; m0 < M; m0 += kRowChunk) {
    const int64_t rows = std::min(kRowChunk, M - m0);
    const float* xt = x_data + m0 * ldx;  // one row is its own transpose
    if (rows > 1) {
      transposed.resize(static_cast<size_t>(rows * in_));
      for (int64_t r = 0; r < rows; ++r) {
        const float* src = x_data + (m0 + r) * ldx;
        for (int64_t k = 0; k < in_; ++k) transposed[k * rows + r] = src[k];
      }
      xt = transposed.data();
    }
    float* y_chunk = y_data + m0 * ldy;
    at::parallel_for(0, panels, 1, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        panel_rows(xt, rows, in_, w_data + p * in_ * kPanel, std::min(kPanel, out_ - p * kPanel),
                   y_chunk + p * kPanel, ldy, accumulate);
      }
    });
  }
}

at::Tensor PackedMatrix::matmul(const at::Tensor& x, const at::Tensor& residual) const {
  at::Tensor y = residual.defined() ? residual.to(at::kFloat, /*non_blocking=*/false, /*copy=*/true,
                                                  at::MemoryFormat::Contiguous)
                                    : at::empty({x.size(0), out_}, at::kFloat);
  matmul_out(x, y, residual.defined());
  return y;
}

at::Tensor huge_page_floats(int64_t count) {
  const size_t bytes = static_cast<size_t>(count) * sizeof(float);
  constexpr size_t kHuge = size_t{2} << 20;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (bytes >= kHuge) {
    const size_t rounded = (bytes + kHuge - 1) / kHuge * kHuge;
    void* memory = nullptr;
    if (posix_memalign(&memory, kHuge, rounded) == 0) {
      madvise(memory, rounded, MADV_HUGEPAGE);  // advice only: without it, ordinary pages
      return at::from_blob(
          memory, {count}, [](void* p) { std::free(p); }, at::TensorOptions(at::kFloat));
    }
  }
#endif
  return at::empty({count}, at::kFloat);
}

bool kernels_use_openmp() {
#if defined(_OPENMP)
  return true;
#else
  return false;
#endif
}

int kernel_threads() {
  std::atomic<int> chunks{0};
  at::parallel_for(0, std::max(1, at::get_num_threads()), 1,
                   [&](int64_t, int64_t) { chunks.fetch_add(1); });
  return chunks.load();
}

}  // namespace rudder::models::detail
