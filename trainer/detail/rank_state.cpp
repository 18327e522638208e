#include "trainer/detail/rank_state.h"

#include <cstring>

#include <torch/torch.h>

#include "core/error.h"

namespace rudder::trainer::detail {
namespace {

// The bytes of a tensor as float64 values (exact for 0-255), so a sum all-reduce can carry them.
at::Tensor as_byte_values(const at::Tensor& t) {
  const at::Tensor c = t.detach().to(torch::kCPU).contiguous();
  const at::Tensor bytes =
      torch::from_blob(c.data_ptr(), {static_cast<int64_t>(c.nbytes())}, torch::kUInt8);
  return bytes.to(torch::kDouble);
}

at::Tensor from_byte_values(const at::Tensor& values, const at::Tensor& like) {
  const at::Tensor bytes = values.round().to(torch::kUInt8).contiguous();
  at::Tensor out = torch::empty(like.sizes(), like.options().device(torch::kCPU));
  RUDDER_ASSERT(static_cast<int64_t>(out.nbytes()) == bytes.numel());
  std::memcpy(out.data_ptr(), bytes.data_ptr(), out.nbytes());
  return out;
}

}  // namespace

std::vector<models::TensorMap> gather_rank_states(const models::TensorMap& mine,
                                                  core::ProcessGroup& group) {
  const int world = group.world_size();
  std::vector<models::TensorMap> out(static_cast<size_t>(world));
  if (world == 1) {
    out[0] = mine;
    return out;
  }
  for (const auto& [name, t] : mine) {
    const at::Tensor values = as_byte_values(t);
    std::vector<at::Tensor> table = {torch::zeros({world, values.numel()}, torch::kDouble)};
    table[0][group.rank()].copy_(values);
    group.allreduce_sum(table);
    for (int r = 0; r < world; ++r)
      out[static_cast<size_t>(r)][name] = from_byte_values(table[0][r], t);
  }
  return out;
}

}  // namespace rudder::trainer::detail
