#include "models/detail/checkpoint.h"

#include <torch/torch.h>

#include "core/rng_state.h"
#include "models/autocast.h"

namespace rudder::models::detail {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// What the backward needs besides the input: the function, the random state it started from
// and whether it ran under autocast (the replay runs under the same, wherever the backward runs).
struct Replay : torch::CustomClassHolder {
  CheckpointedFn fn;
  at::Tensor cpu_rng;
  bool autocast = false;
};

class Checkpoint : public torch::autograd::Function<Checkpoint> {
 public:
  // `anchor` requires grad so the output does too; it gets no gradient.
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x,
                               const at::Tensor& /*anchor*/, c10::intrusive_ptr<Replay> replay) {
    replay->cpu_rng = core::cpu_generator_state();
    replay->autocast = models::autocast_enabled(x.device().type());
    at::Tensor y;
    {
      // The trainer's autocast region spans the backward: bf16 weight copies cached here,
      // without grad, would be what the replay finds, and the layer would get no gradient.
      NoAutocastCacheGuard no_cache;
      y = replay->fn(x);  // grad mode is off here: no intermediates kept
    }
    ctx->save_for_backward({x});
    ctx->saved_data["replay"] = c10::IValue::make_capsule(std::move(replay));
    return {y};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto replay =
        c10::static_intrusive_pointer_cast<Replay>(ctx->saved_data["replay"].toCapsule());
    const at::Tensor x = ctx->get_saved_variables()[0].detach().requires_grad_(true);
    const at::Tensor rng_now = core::cpu_generator_state();
    core::set_cpu_generator_state(replay->cpu_rng);
    at::Tensor y;
    {
      torch::AutoGradMode grad_on(true);
      models::AutocastGuard as_in_forward(x.device().type(), replay->autocast);
      y = replay->fn(x);
    }
    core::set_cpu_generator_state(rng_now);
    torch::autograd::backward({y}, {grads[0]});
    return {x.grad(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor checkpoint(CheckpointedFn fn, const at::Tensor& x) {
  auto replay = c10::make_intrusive<Replay>();
  replay->fn = std::move(fn);
  const at::Tensor anchor = torch::empty({0}, x.options()).requires_grad_(true);
  return Checkpoint::apply(x, anchor, std::move(replay))[0];
}

}  // namespace rudder::models::detail
