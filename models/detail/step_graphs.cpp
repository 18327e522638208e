#include "models/detail/step_graphs.h"

#include <exception>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/log.h"
#include "core/runtime.h"

// RUDDER_CUDA_GRAPHS comes from CMake where libtorch has CUDA. A CPU libtorch may ship ATen's
// CUDA headers without the toolkit's they include, which CMake does not see: such a build must
// not lose its graphs without a word.
#ifdef RUDDER_CUDA_GRAPHS
#if !__has_include(<ATen/cuda/CUDAGraph.h>) || !__has_include(<cuda_runtime_api.h>)
#error "RUDDER_CUDA_GRAPHS needs ATen's CUDA headers and the CUDA toolkit's"
#endif
#define RUDDER_HAVE_CUDA_GRAPHS 1
#include <ATen/cuda/CUDAGraph.h>
#include <c10/core/Event.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/cuda.h>
#include <torch/version.h>
#endif

namespace rudder::models::detail {

#ifdef RUDDER_HAVE_CUDA_GRAPHS

namespace {

bool disabled_by_environment() { return core::turned_off("RUDDER_CUDA_GRAPHS"); }

using Pool = decltype(std::declval<at::cuda::CUDAGraph&>().pool());

// Starts capturing into `graph` on the current stream. Thread-local capture mode (libtorch 2):
// another thread's CUDA calls meanwhile (a trainer building new weights for the rollout
// server) neither fail nor invalidate the capture, as they would in the global mode.
void begin_capture(at::cuda::CUDAGraph& graph, Pool pool) {
#if TORCH_VERSION_MAJOR >= 2
  graph.capture_begin(pool, cudaStreamCaptureModeThreadLocal);
#else
  graph.capture_begin(pool);
#endif
}

// Makes `to` wait for the work queued on `from` so far.
void join(const c10::cuda::CUDAStream& from, const c10::cuda::CUDAStream& to) {
  c10::Event event(c10::DeviceType::CUDA);
  event.record(from);
  event.block(to);
}

}  // namespace

struct StepGraphs::Impl {
  std::map<std::pair<int64_t, int64_t>, std::unique_ptr<at::cuda::CUDAGraph>> graphs;
  std::optional<Pool> pool;  // the first graph's memory pool, which every later graph shares
  // One capture stream: the caching allocator keeps freed blocks per stream, so captures on one
  // stream reuse each other's memory in the shared pool.
  std::optional<c10::cuda::CUDAStream> side;
  bool broken = false;  // a capture failed: steps run without graphs from then on
  // Graphs whose capture failed. Kept alive: libtorch's allocator may still refer to a graph
  // whose capture_end threw.
  std::vector<std::unique_ptr<at::cuda::CUDAGraph>> failed;
};

bool StepGraphs::available() {
  static const bool yes = !disabled_by_environment() && torch::cuda::is_available();
  return yes;
}

bool StepGraphs::compiled() { return true; }

void StepGraphs::run(int device, std::pair<int64_t, int64_t> key,
                     const std::function<void()>& step) {
  RUDDER_CHECK(available(), "CUDA graphs are not available");
  const c10::cuda::CUDAGuard on_device(static_cast<c10::DeviceIndex>(device));
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
  // workspace for that stream outside the capture); both follow the current stream's work, and
  // the current stream waits for them, whatever happens in between.
  const c10::cuda::CUDAStream current = c10::cuda::getCurrentCUDAStream();
  if (!impl_->side) impl_->side = c10::cuda::getStreamFromPool();
  const c10::cuda::CUDAStream side = *impl_->side;
  join(current, side);
  struct Rejoin {
    const c10::cuda::CUDAStream &side, &current;
    ~Rejoin() { join(side, current); }
  } rejoin{side, current};
  const c10::cuda::CUDAStreamGuard on_side(side);
  step();  // the call's real work
  auto graph = std::make_unique<at::cuda::CUDAGraph>();
  try {
    // Graphs share one pool: every temporary of a step dies within it, and the graphs of one
    // decoder never run at once.
    begin_capture(*graph, impl_->pool.value_or(Pool{0, 0}));
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
    impl_->failed.push_back(std::move(graph));
    RUDDER_LOG(kWarn) << "capturing the decode step into a CUDA graph failed; decoding runs "
                         "without graphs from now on: "
                      << e.what();
    return;
  }
  if (!impl_->pool) impl_->pool = graph->pool();
  impl_->graphs.emplace(key, std::move(graph));
}

void StepGraphs::clear() {
  impl_->graphs.clear();
  impl_->pool.reset();
}

size_t StepGraphs::size() const { return impl_->graphs.size(); }

#else  // no CUDA in this build

struct StepGraphs::Impl {};

bool StepGraphs::available() { return false; }

bool StepGraphs::compiled() { return false; }

void StepGraphs::run(int, std::pair<int64_t, int64_t>, const std::function<void()>&) {
  throw core::Error("CUDA graphs are not available: this build's libtorch has no CUDA");
}

void StepGraphs::clear() {}

size_t StepGraphs::size() const { return 0; }

#endif

StepGraphs::StepGraphs() : impl_(std::make_unique<Impl>()) {}
StepGraphs::~StepGraphs() = default;

}  // namespace rudder::models::detail
