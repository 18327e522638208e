#include "models/detail/step_graphs.h"

#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>

#include "core/error.h"
#include "core/log.h"

// RUDDER_CUDA_GRAPHS comes from CMake where libtorch has CUDA; the headers are checked too, since
// a CPU libtorch may ship ATen's CUDA headers without the toolkit's they include.
#if defined(RUDDER_CUDA_GRAPHS) && __has_include(<ATen/cuda/CUDAGraph.h>) && \
    __has_include(<cuda_runtime_api.h>)
#define RUDDER_HAVE_CUDA_GRAPHS 1
#include <ATen/cuda/CUDAGraph.h>
#include <c10/core/Event.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/cuda.h>
#endif

namespace rudder::models::detail {

#ifdef RUDDER_HAVE_CUDA_GRAPHS

namespace {

bool disabled_by_environment() {
  const char* value = std::getenv("RUDDER_CUDA_GRAPHS");
  return value != nullptr && std::strcmp(value, "0") == 0;
}

}  // namespace

struct StepGraphs::Impl {
  std::map<std::pair<int64_t, int64_t>, std::unique_ptr<at::cuda::CUDAGraph>> graphs;
  at::cuda::CUDAGraph* first = nullptr;  // whose memory pool every later graph shares
  bool broken = false;                   // a capture failed: steps run eagerly from then on
};

bool StepGraphs::available() {
  static const bool yes = !disabled_by_environment() && torch::cuda::is_available();
  return yes;
}

void StepGraphs::run(std::pair<int64_t, int64_t> key, const std::function<void()>& step) {
  RUDDER_CHECK(available(), "CUDA graphs are not available");
  if (impl_->broken) {
    step();
    return;
  }
  const auto found = impl_->graphs.find(key);
  if (found != impl_->graphs.end()) {
    found->second->replay();
    return;
  }
  // Capture happens on a side stream, after an eager run there (which initialises cuBLAS's
  // workspace for that stream outside the capture); both are ordered after the current
  // stream's work and before what follows on it.
  const c10::cuda::CUDAStream current = c10::cuda::getCurrentCUDAStream();
  const c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool();
  c10::Event before(c10::DeviceType::CUDA);
  before.record(current);
  before.block(side);
  auto graph = std::make_unique<at::cuda::CUDAGraph>();
  {
    const c10::cuda::CUDAStreamGuard on_side(side);
    step();  // the call's real work
    try {
      // Graphs share one pool: a replay's temporaries are dead once it ends, and the graphs
      // of one decoder never run at once.
      if (impl_->first != nullptr) {
        graph->capture_begin(impl_->first->pool());
      } else {
        graph->capture_begin();
      }
      try {
        step();  // recorded, not run
      } catch (...) {
        try {
          graph->capture_end();  // ends the stream's capture; reports it invalidated
        } catch (...) {
        }
        throw;
      }
      graph->capture_end();
    } catch (const std::exception& e) {
      impl_->broken = true;
      RUDDER_LOG(kWarn) << "capturing the decode step into a CUDA graph failed; decoding "
                           "runs without graphs from now on: "
                        << e.what();
      graph.reset();
    }
  }
  c10::Event after(c10::DeviceType::CUDA);
  after.record(side);
  after.block(current);
  if (!graph) return;
  if (impl_->first == nullptr) impl_->first = graph.get();
  impl_->graphs.emplace(key, std::move(graph));
}

void StepGraphs::clear() {
  impl_->graphs.clear();
  impl_->first = nullptr;
}

size_t StepGraphs::size() const { return impl_->graphs.size(); }

#else  // no CUDA in this build

struct StepGraphs::Impl {};

bool StepGraphs::available() { return false; }

void StepGraphs::run(std::pair<int64_t, int64_t>, const std::function<void()>&) {
  throw core::Error("CUDA graphs are not available: this build's libtorch has no CUDA");
}

void StepGraphs::clear() {}

size_t StepGraphs::size() const { return 0; }

#endif

StepGraphs::StepGraphs() : impl_(std::make_unique<Impl>()) {}
StepGraphs::~StepGraphs() = default;

}  // namespace rudder::models::detail
