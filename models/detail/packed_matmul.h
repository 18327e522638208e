// A weight matrix kept in the layout a decoding matmul reads best. BLAS packs the weight into
// its own panels on every call; at the few rows of a decode step that copy costs as much as
// the product, so this layout is made once, when the weights are loaded: panels of 32 outputs,
// each [in, 32] contiguous, read by an AVX-512 kernel. CPU, float32 only.
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>

namespace rudder::models::detail {

/// A [out, in] float32 weight packed in panels of kPanel outputs. Immutable once built:
/// matmul_out may run on several threads at once. Each output row is computed in the same
/// order whatever other rows share the call, so a row's result does not depend on them.
class PackedMatrix {
 public:
  /// Outputs per panel: two 16-float AVX-512 vectors.
  static constexpr int64_t kPanel = 32;

  /// Whether this CPU runs the packed kernel (x86-64 with AVX-512F).
  static bool supported();

  /// No matrix: defined() is false.
  PackedMatrix() = default;
  /// Packs `weight` [out, in] (float32, CPU). Large panels are placed on transparent huge pages
  /// where the system offers them, which streams them faster through the TLB. Throws
  /// InvalidArgument for another weight, or where supported() is false.
  explicit PackedMatrix(const at::Tensor& weight);

  /// Whether a weight was packed.
  bool defined() const { return panels_.defined(); }
  /// The weight's [out, in] sizes.
  int64_t out_features() const { return out_; }
  int64_t in_features() const { return in_; }

  /// y [M, out] (float32 CPU, rows contiguous and at least `out` floats apart) = x [M, in]
  /// weight^T, plus y's own values when `accumulate`. Throws InvalidArgument for other shapes
  /// or when y overlaps x.
  void matmul_out(const at::Tensor& x, at::Tensor& y, bool accumulate) const;
  /// x [M, in] weight^T (+ residual [M, out] when defined), a new tensor.
  at::Tensor matmul(const at::Tensor& x, const at::Tensor& residual) const;

 private:
  at::Tensor panels_;  // [ceil(out / kPanel), in, kPanel], zero past `out`
  int64_t out_ = 0, in_ = 0;
};

/// A new float32 tensor of `count` elements; at or above 2 MiB, aligned to and advised onto
/// transparent huge pages (fewer TLB misses when streamed), else ordinary memory.
at::Tensor huge_page_floats(int64_t count);

/// Whether the kernels of models/detail are compiled with OpenMP (RUDDER_OPENMP), which
/// at::parallel_for needs to start threads.
bool kernels_use_openmp();

/// How many chunks at::parallel_for splits a loop of libtorch's thread count into in these
/// kernels: that thread count with OpenMP, else 1.
int kernel_threads();

}  // namespace rudder::models::detail
