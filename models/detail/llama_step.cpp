#include "models/detail/llama_step.h"

#include <cmath>
#include <cstring>

namespace rudder::models::detail {

void rms_norm_rows(const float* x, int64_t n, int64_t width, float eps, float* out) {
  for (int64_t m = 0; m < n; ++m) {
    const float* row = x + m * width;
    float part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t k = 0;
    for (; k + 8 <= width; k += 8) {
      for (int l = 0; l < 8; ++l) part[l] += row[k + l] * row[k + l];
    }
    float sum =
        ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
    for (; k < width; ++k) sum += row[k] * row[k];
    const float scale = 1.0f / std::sqrt(sum / static_cast<float>(width) + eps);
    float* dst = out + m * width;
    for (k = 0; k < width; ++k) dst[k] = row[k] * scale;
  }
}

void rope_rows(float* qkv, int64_t n, int64_t stride, int64_t heads, int64_t head_dim,
               const float* rope, const std::vector<int64_t>& positions) {
  const int64_t half = head_dim / 2;
  for (int64_t m = 0; m < n; ++m) {
    const float* r = rope + positions[m] * half * 2;  // (cos, sin) pairs
    for (int64_t h = 0; h < heads; ++h) {
      float* v = qkv + m * stride + h * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        const float a = v[2 * i], b = v[2 * i + 1], c = r[2 * i], s = r[2 * i + 1];
        v[2 * i] = a * c - b * s;
        v[2 * i + 1] = a * s + b * c;
      }
    }
  }
}

void write_kv_rows(const float* kv, int64_t n, int64_t stride, const at::Tensor& cache,
                   const std::vector<int64_t>& positions) {
  const int64_t hkv = cache.size(1), length = cache.size(3), dim = cache.size(4);
  float* base = cache.data_ptr<float>();
  for (int64_t m = 0; m < n; ++m) {
    for (int64_t h = 0; h < hkv; ++h) {
      for (int64_t part = 0; part < 2; ++part) {  // keys, then values
        float* dst = base + (((m * hkv + h) * 2 + part) * length + positions[m]) * dim;
        std::memcpy(dst, kv + m * stride + (part * hkv + h) * dim, dim * sizeof(float));
      }
    }
  }
}

}  // namespace rudder::models::detail
