#include "models/detail/decode_attention.h"

#include <algorithm>
#include <cmath>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

namespace rudder::models::detail {
namespace {

struct Layout {
  const float* q;      // n rows q_stride apart, each [Hkv, G, D]
  const float* cache;  // [slots, Hkv, 2, L, D]
  float* out;          // [n, Hkv, G, D]
  int64_t q_stride, hkv, groups, dim, max_length;
  float scale;
};

// One (row, kv head): its G queries against the row's `length` cached positions.
__attribute__((target_clones("avx2", "default"))) void attend_one(const Layout& l, int64_t row,
                                                                  int64_t head, int64_t length,
                                                                  float* scores) {
  const int64_t D = l.dim;
  const float* keys = l.cache + ((row * l.hkv + head) * 2) * l.max_length * D;
  const float* values = keys + l.max_length * D;
  for (int64_t g = 0; g < l.groups; ++g) {
    const float* q = l.q + row * l.q_stride + (head * l.groups + g) * D;
    float* out = l.out + ((row * l.hkv + head) * l.groups + g) * D;
    float top = -INFINITY;
    for (int64_t s = 0; s < length; ++s) {
      const float* k = keys + s * D;
      float dot = 0;
      for (int64_t d = 0; d < D; ++d) dot += q[d] * k[d];
      scores[s] = dot * l.scale;
      top = std::max(top, scores[s]);
    }
    float total = 0;
    for (int64_t s = 0; s < length; ++s) {
      scores[s] = std::exp(scores[s] - top);
      total += scores[s];
    }
    for (int64_t d = 0; d < D; ++d) out[d] = 0;
    for (int64_t s = 0; s < length; ++s) {
      const float p = scores[s] / total;
      const float* v = values + s * D;
      for (int64_t d = 0; d < D; ++d) out[d] += p * v[d];
    }
  }
}

}  // namespace

bool decode_attention_applies(const at::Tensor& like, const at::Tensor& cache) {
  return like.is_cpu() && cache.is_cpu() && like.scalar_type() == at::kFloat &&
         cache.scalar_type() == at::kFloat && cache.is_contiguous() && cache.dim() == 5;
}

void decode_attention_into(const float* q, int64_t q_stride, int64_t n, int64_t groups,
                           const at::Tensor& cache, const std::vector<int64_t>& lengths,
                           double scale, float* out) {
  const int64_t hkv = cache.size(1);
  const Layout l{q,
                 cache.data_ptr<float>(),
                 out,
                 q_stride,
                 hkv,
                 groups,
                 cache.size(4),
                 cache.size(3),
                 static_cast<float>(scale)};
  const int64_t longest = *std::max_element(lengths.begin(), lengths.begin() + n);
  at::parallel_for(0, n * hkv, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scores(longest);
    for (int64_t i = begin; i < end; ++i)
      attend_one(l, i / hkv, i % hkv, lengths[i / hkv], scores.data());
  });
}

at::Tensor decode_attention(const at::Tensor& q_in, const at::Tensor& cache,
                            const std::vector<int64_t>& lengths, double scale) {
  const at::Tensor q = q_in.contiguous();
  const int64_t n = q.size(0), hkv = q.size(1), groups = q.size(2), dim = q.size(3);
  at::Tensor out = at::empty({n, hkv, groups, dim}, q.options());
  decode_attention_into(q.data_ptr<float>(), hkv * groups * dim, n, groups, cache, lengths, scale,
                        out.data_ptr<float>());
  return out.view({n, hkv * groups * dim});
}

}  // namespace rudder::models::detail
