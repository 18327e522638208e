#include "models/detail/fused_elementwise.h"

#include <torch/torch.h>

#include "core/error.h"
#include "core/runtime.h"

#ifdef RUDDER_CUDA_KERNELS
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "models/detail/cuda/elementwise.h"
#endif

namespace rudder::models::detail {

#ifdef RUDDER_CUDA_KERNELS
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

cuda::Dtype kernel_dtype(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return cuda::Dtype::kFloat;
    case at::kBFloat16:
      return cuda::Dtype::kBFloat16;
    case at::kHalf:
      return cuda::Dtype::kHalf;
    default:
      break;
  }
  throw core::InvalidArgument(
      core::str("Rudder's CUDA kernels take float32, bfloat16 or float16, not ", t));
}

// `t` with its row stride (even_row_stride), or a copy with the canonical strides of its sizes.
struct Rowed {
  at::Tensor tensor;
  int64_t row_stride;
};

Rowed rowed(const at::Tensor& t, int64_t inner) {
  const int64_t step = even_row_stride(t, inner);
  if (step >= 0) return {t, step};
  const at::Tensor copy = t.clone(at::MemoryFormat::Contiguous);
  return {copy, even_row_stride(copy, inner)};
}

// [B, T, heads, D] as the kernels' operand: rows of B x T tokens.
cuda::HeadRows head_rows(const Rowed& r) {
  return {r.tensor.data_ptr(), kernel_dtype(r.tensor.scalar_type()), r.row_stride,
          r.tensor.stride(2)};
}

cuda::Rows rows_of(const Rowed& r) {
  return {r.tensor.data_ptr(), kernel_dtype(r.tensor.scalar_type()), r.row_stride};
}

void check_launch(const char* error, const char* what) {
  RUDDER_CHECK(error == nullptr, what, " kernel failed to launch: ", error);
}

void* current_stream(const at::Tensor& t) {
  return at::cuda::getCurrentCUDAStream(t.device().index()).stream();
}

// x [B, T, heads, D] rotated by `cos` and `sin` [B, T, D/2] into a new [B, T, heads, D] tensor.
at::Tensor rotate(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                  at::ScalarType dtype, bool inverse) {
  const c10::cuda::CUDAGuard device(x.device());
  const at::Tensor out = at::empty(x.sizes(), x.options().dtype(dtype));
  check_launch(cuda::rotary(head_rows(rowed(x, 2)), head_rows(rowed(out, 2)), cos.data_ptr<float>(),
                            sin.data_ptr<float>(), x.size(0) * x.size(1), x.size(2), x.size(3),
                            inverse, current_stream(x)),
               "RoPE");
  return out;
}

class Rope : public torch::autograd::Function<Rope> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& cos,
                            const at::Tensor& sin, at::ScalarType dtype) {
    ctx->save_for_backward({cos, sin});
    ctx->saved_data["dtype"] = static_cast<int64_t>(x.scalar_type());
    return rotate(x, cos, sin, dtype, /*inverse=*/false);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    if (!grads[0].defined()) return {at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
    const variable_list saved = ctx->get_saved_variables();
    const auto dtype = static_cast<at::ScalarType>(ctx->saved_data["dtype"].toInt());
    return {rotate(grads[0], saved[0], saved[1], dtype, /*inverse=*/true), at::Tensor(),
            at::Tensor(), at::Tensor()};
  }
};

// Rows of [..., width] tensors: everything but the last dimension.
int64_t rows_in(const at::Tensor& t) { return t.size(-1) == 0 ? 0 : t.numel() / t.size(-1); }

class SwiGlu : public torch::autograd::Function<SwiGlu> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& gate, const at::Tensor& up) {
    const c10::cuda::CUDAGuard device(gate.device());
    const Rowed g = rowed(gate, 1), u = rowed(up, 1);
    const at::Tensor y = at::empty(gate.sizes(), gate.options());
    check_launch(cuda::swiglu(rows_of(g), rows_of(u), rows_of(rowed(y, 1)), rows_in(gate),
                              gate.size(-1), current_stream(gate)),
                 "SwiGLU");
    ctx->save_for_backward({g.tensor, u.tensor});
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    if (!grads[0].defined()) return {at::Tensor(), at::Tensor()};
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &g = saved[0], &u = saved[1];
    const c10::cuda::CUDAGuard device(g.device());
    const at::Tensor dg = at::empty(g.sizes(), g.options()), du = at::empty(u.sizes(), u.options());
    check_launch(
        cuda::swiglu_backward(rows_of(rowed(grads[0].to(g.scalar_type()), 1)), rows_of(rowed(g, 1)),
                              rows_of(rowed(u, 1)), rows_of(rowed(dg, 1)), rows_of(rowed(du, 1)),
                              rows_in(g), g.size(-1), current_stream(g)),
        "SwiGLU backward");
    return {dg, du};
  }
};

// The gate and up halves of a joined [..., 2 width] operand's rows, gate first.
struct Halves {
  cuda::Rows gate, up;
};

Halves halves(const Rowed& joined, int64_t width) {
  const cuda::Rows gate = rows_of(joined);
  cuda::Rows up = gate;
  up.data = static_cast<char*>(gate.data) + width * joined.tensor.element_size();
  return {gate, up};
}

class SwiGluJoined : public torch::autograd::Function<SwiGluJoined> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& gate_up) {
    const c10::cuda::CUDAGuard device(gate_up.device());
    const int64_t width = gate_up.size(-1) / 2;
    const Rowed joined = rowed(gate_up, 1);
    const Halves in = halves(joined, width);
    std::vector<int64_t> shape = gate_up.sizes().vec();
    shape.back() = width;
    const at::Tensor y = at::empty(shape, gate_up.options());  // [..., width]
    check_launch(cuda::swiglu(in.gate, in.up, rows_of(rowed(y, 1)), rows_in(gate_up), width,
                              current_stream(gate_up)),
                 "SwiGLU");
    ctx->save_for_backward({joined.tensor});
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    if (!grads[0].defined()) return {at::Tensor()};
    const at::Tensor saved = ctx->get_saved_variables()[0];
    const c10::cuda::CUDAGuard device(saved.device());
    const int64_t width = saved.size(-1) / 2;
    const at::Tensor d = at::empty(saved.sizes(), saved.options());  // [..., 2 width]
    const Rowed joined = rowed(saved, 1), d_joined = rowed(d, 1),
                dy = rowed(grads[0].to(saved.scalar_type()), 1);
    const Halves in = halves(joined, width), out = halves(d_joined, width);
    check_launch(cuda::swiglu_backward(rows_of(dy), in.gate, in.up, out.gate, out.up,
                                       rows_in(saved), width, current_stream(saved)),
                 "SwiGLU backward");
    return {d};
  }
};

}  // namespace
#endif

int64_t even_row_stride(const at::Tensor& t, int64_t inner) {
  if (t.size(-1) > 1 && t.stride(-1) != 1) return -1;
  int64_t step = 0, span = -1;  // the innermost row dimension's stride; what the next must be
  for (int64_t d = t.dim() - inner - 1; d >= 0; --d) {
    if (t.size(d) == 1) continue;  // no step, whatever its stride says
    if (span >= 0 && t.stride(d) != span) return -1;
    if (span < 0) step = t.stride(d);
    span = t.stride(d) * t.size(d);
  }
  return step;
}

bool cuda_kernels_apply(const at::Tensor& x) {
#ifdef RUDDER_CUDA_KERNELS
  static const bool enabled = !core::turned_off("RUDDER_CUDA_KERNELS");
  const at::ScalarType t = x.scalar_type();
  return enabled && x.is_cuda() && (t == at::kFloat || t == at::kBFloat16 || t == at::kHalf);
#else
  (void)x;
  return false;
#endif
}

at::Tensor rope_cuda(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                     at::ScalarType dtype) {
  RUDDER_ASSERT(cuda_kernels_apply(x), "rope_cuda without Rudder's CUDA kernels");
  RUDDER_ASSERT(x.dim() == 4 && x.size(3) % 2 == 0 && cos.scalar_type() == at::kFloat &&
                    sin.scalar_type() == at::kFloat && cos.device() == x.device() &&
                    sin.device() == x.device() && cos.is_contiguous() && sin.is_contiguous() &&
                    cos.sizes() == sin.sizes() &&
                    cos.numel() == x.size(0) * x.size(1) * x.size(3) / 2,
                "rope_cuda: x ", x.sizes(), ", cos ", cos.sizes(), ", sin ", sin.sizes());
#ifdef RUDDER_CUDA_KERNELS
  return Rope::apply(x, cos, sin, dtype);
#else
  return {};
#endif
}

at::Tensor swiglu_cuda(const at::Tensor& gate, const at::Tensor& up) {
  RUDDER_ASSERT(cuda_kernels_apply(gate), "swiglu_cuda without Rudder's CUDA kernels");
  RUDDER_ASSERT(
      gate.sizes() == up.sizes() && gate.scalar_type() == up.scalar_type() && gate.dim() >= 1,
      "swiglu_cuda: gate ", gate.sizes(), " ", gate.scalar_type(), ", up ", up.sizes(), " ",
      up.scalar_type());
#ifdef RUDDER_CUDA_KERNELS
  return SwiGlu::apply(gate, up);
#else
  return {};
#endif
}

at::Tensor swiglu_joined_cuda(const at::Tensor& gate_up) {
  RUDDER_ASSERT(cuda_kernels_apply(gate_up), "swiglu_joined_cuda without Rudder's CUDA kernels");
  RUDDER_ASSERT(gate_up.dim() >= 1 && gate_up.size(-1) % 2 == 0, "swiglu_joined_cuda: gate_up ",
                gate_up.sizes(), ", not [..., 2 width]");
#ifdef RUDDER_CUDA_KERNELS
  return SwiGluJoined::apply(gate_up);
#else
  return {};
#endif
}

}  // namespace rudder::models::detail
