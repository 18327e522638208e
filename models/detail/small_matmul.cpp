#include "models/detail/small_matmul.h"

#include <immintrin.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

namespace rudder::models::detail {
namespace {

// Where the output rows come from: y[m, j] = residual[m, j] + dot(w[j, :], x[m, :]).
struct Operands {
  const float* x;
  const float* w;
  const float* residual;  // null: none
  float* y;
  int64_t M, K, N;
};

// Outputs j in [begin, end) with AVX2 and FMA: four 8-wide accumulators per dot product.
__attribute__((target("avx2,fma"))) void dots_avx2(const Operands& o, int64_t begin, int64_t end) {
  for (int64_t j = begin; j < end; ++j) {
    const float* wj = o.w + j * o.K;
    for (int64_t m = 0; m < o.M; ++m) {
      const float* xm = o.x + m * o.K;
      __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
      __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
      int64_t k = 0;
      for (; k + 32 <= o.K; k += 32) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(wj + k), _mm256_loadu_ps(xm + k), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(wj + k + 8), _mm256_loadu_ps(xm + k + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(wj + k + 16), _mm256_loadu_ps(xm + k + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(wj + k + 24), _mm256_loadu_ps(xm + k + 24), a3);
      }
      float lanes[8];
      _mm256_storeu_ps(lanes, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
      float acc = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) +
                  ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
      for (; k < o.K; ++k) acc += wj[k] * xm[k];
      const int64_t at = m * o.N + j;
      o.y[at] = o.residual != nullptr ? o.residual[at] + acc : acc;
    }
  }
}

// The same on any x86-64 (and elsewhere): eight partial sums the compiler can vectorize.
void dots_portable(const Operands& o, int64_t begin, int64_t end) {
  for (int64_t j = begin; j < end; ++j) {
    const float* wj = o.w + j * o.K;
    for (int64_t m = 0; m < o.M; ++m) {
      const float* xm = o.x + m * o.K;
      float part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      int64_t k = 0;
      for (; k + 8 <= o.K; k += 8) {
        for (int l = 0; l < 8; ++l) part[l] += wj[k + l] * xm[k + l];
      }
      float acc =
          ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
      for (; k < o.K; ++k) acc += wj[k] * xm[k];
      const int64_t at = m * o.N + j;
      o.y[at] = o.residual != nullptr ? o.residual[at] + acc : acc;
    }
  }
}

bool has_avx2() {
#if defined(__x86_64__)
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes;
#else
  return false;
#endif
}

}  // namespace

bool small_matmul_applies(const at::Tensor& x, const at::Tensor& weight) {
  return x.is_cpu() && weight.is_cpu() && x.scalar_type() == at::kFloat &&
         weight.scalar_type() == at::kFloat && x.dim() == 2 && weight.dim() == 2 &&
         x.size(0) <= kSmallMatmulRows && x.size(1) == weight.size(1) && weight.is_contiguous();
}

namespace {

// Threads split the outputs; chunks of at least 16 (64 KiB of weight at K = 1024) keep their
// start-up cost small against their reads. `residual` may be `y` itself.
void run(const at::Tensor& x, const at::Tensor& weight, const float* residual, float* y) {
  const Operands o{x.data_ptr<float>(), weight.data_ptr<float>(), residual, y, x.size(0), x.size(1),
                   weight.size(0)};
  const bool avx2 = has_avx2();
  at::parallel_for(0, o.N, 16, [&](int64_t begin, int64_t end) {
    if (avx2) {
      dots_avx2(o, begin, end);
    } else {
      dots_portable(o, begin, end);
    }
  });
}

}  // namespace

at::Tensor small_matmul(const at::Tensor& x_in, const at::Tensor& weight,
                        const at::Tensor& residual_in) {
  const at::Tensor x = x_in.contiguous();
  const at::Tensor residual =
      residual_in.defined() ? residual_in.to(at::kFloat).contiguous() : at::Tensor();
  at::Tensor y = at::empty({x.size(0), weight.size(0)}, x.options());
  run(x, weight, residual.defined() ? residual.data_ptr<float>() : nullptr, y.data_ptr<float>());
  return y;
}

void small_matmul_out(const at::Tensor& x_in, const at::Tensor& weight, at::Tensor& y,
                      bool accumulate) {
  const at::Tensor x = x_in.contiguous();
  float* out = y.data_ptr<float>();
  run(x, weight, accumulate ? out : nullptr, out);
}

}  // namespace rudder::models::detail
