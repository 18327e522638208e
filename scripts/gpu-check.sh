#!/usr/bin/env bash
# Builds and checks Rudder on a GPU machine against the libtorch of its PyTorch install, with no
# network: unpacks the Debian packages scripts/gpu-prepare.sh carried (dpkg -x into a prefix),
# configures against torch.utils.cmake_prefix_path and that prefix, builds with CUDA, runs the
# unit and golden tests (tests named Cuda use the GPU; device `auto` configs train on it), the
# benchmarks beside PyTorch-Python, and data-parallel training over NCCL (two ranks on two GPUs;
# one rank on one GPU). Ends with a summary; every step's log goes to $OUT (or build/gpu-check).
#
# Usage: scripts/gpu-check.sh [DEPS]            DEPS: the prepared folder (.gpu-deps)
# Environment:
#   OUT                      where logs and summary.txt go (the device tool's $OUT)
#   RUDDER_GPU_CHECK_CPU=1   dry run on a CPU machine against Debian's libtorch, to prove the
#                            unpacking, configuration, build and test logic before GPU minutes
#   RUDDER_GPU_CHECK_STEPS   steps to run, comma-separated (default: all of
#                            deps,configure,build,bench,test,ddp, run in that order)
#   RUDDER_GPU_CHECK_TARGETS build only these targets (space-separated; default: all)
#   RUDDER_GPU_CHECK_BENCHES benchmarks to run, comma-separated (default: all of decode,
#                            dpo_step,dpo_step_large,dpo_step_unfused; each where its tool was built)
#   RUDDER_GPU_CHECK_TESTS   ctest -R regex (default: every unit test and the golden ones)
#   RUDDER_GPU_CHECK_TEST_TIMEOUT  seconds a test may run (default 300)
#   RUDDER_GPU_BUILD         build directory (default build/gpu; build/gpu-cpu for the dry run)
#   RUDDER_GPU_PREFIX        where packages unpack (default /tmp/rudder-gpu-prefix)
#   JOBS                     parallel jobs (default: nproc)
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
deps=$(cd "${1:-$root/.gpu-deps}" 2>/dev/null && pwd) || {
  echo "gpu-check: no prepared folder ${1:-$root/.gpu-deps}; run scripts/gpu-prepare.sh" >&2
  exit 2
}
cpu_mode=${RUDDER_GPU_CHECK_CPU:-0}
steps=${RUDDER_GPU_CHECK_STEPS:-deps,configure,build,bench,test,ddp}
prefix=${RUDDER_GPU_PREFIX:-/tmp/rudder-gpu-prefix}
if [[ $cpu_mode == 1 ]]; then build=${RUDDER_GPU_BUILD:-$root/build/gpu-cpu}; else build=${RUDDER_GPU_BUILD:-$root/build/gpu}; fi
out=${OUT:-$root/build/gpu-check}
jobs=${JOBS:-$(nproc)}
mkdir -p "$out"
summary=()
failed=0

note() { echo "gpu-check: $*" | tee -a "$out/summary.txt"; }
wants() { [[ ",$steps," == *",$1,"* ]]; }
# run_step NAME COMMAND...: runs COMMAND with its output in $out/NAME.log; records the result.
run_step() {
  local name=$1
  shift
  local start=$SECONDS
  echo "== $name: $*" | tee -a "$out/summary.txt"
  if "$@" >"$out/$name.log" 2>&1; then
    summary+=("PASS  $name ($((SECONDS - start)) s)")
    return 0
  fi
  summary+=("FAIL  $name ($((SECONDS - start)) s): see $name.log")
  failed=1
  tail -n 30 "$out/$name.log"
  return 1
}
finish() {
  {
    echo
    echo "==== gpu-check summary ($([[ $cpu_mode == 1 ]] && echo "CPU dry run" || echo GPU)) ===="
    printf '%s\n' "${summary[@]}"
  } | tee -a "$out/summary.txt"
  exit "$failed"
}

: >"$out/summary.txt"

# ---- The torch to build against, and whether Debian's libraries can link with it. ----
if [[ $cpu_mode == 1 ]]; then
  torch_prefix=${RUDDER_TORCH_PREFIX:-/usr/lib/x86_64-linux-gnu/cmake}
  gpus=0
  note "CPU dry run: Debian's libtorch at $torch_prefix, no CUDA, NCCL step skipped"
else
  python=${RUDDER_PYTHON:-python3}
  info=$("$python" -c 'import torch
print(torch.__version__, int(torch._C._GLIBCXX_USE_CXX11_ABI), torch.cuda.device_count(),
      torch.version.cuda, torch.utils.cmake_prefix_path)') || {
    note "cannot import torch with $python"
    summary+=("FAIL  torch: $python cannot import torch")
    failed=1
    finish
  }
  read -r torch_version abi gpus cuda_version torch_prefix <<<"$info"
  note "torch $torch_version (CUDA $cuda_version, CXX11 ABI $abi), $gpus GPU(s), cmake prefix $torch_prefix"
  nvidia-smi -L 2>&1 | tee -a "$out/summary.txt"
  if [[ $abi != 1 ]]; then
    # Debian's yaml-cpp, protobuf, prometheus-cpp and gtest are built with the C++11 ABI; a
    # pre-C++11-ABI libtorch cannot link with them (std::string differs). Building them from
    # source here would need their sources carried and minutes of device time; PyTorch's own
    # wheels use the C++11 ABI since 2.7, so use such a PyTorch instead.
    note "torch uses _GLIBCXX_USE_CXX11_ABI=0; Debian's libraries use 1: cannot link them"
    summary+=("FAIL  abi: torch $torch_version is a pre-C++11-ABI build; use a PyTorch >= 2.7")
    failed=1
    finish
  fi
  if ((gpus == 0)); then
    note "torch sees no GPU; the CUDA tests will skip and NCCL cannot run"
  fi
  # The CUDA toolkit torch's CMake files look for: nvcc on PATH, else the usual places.
  if ! command -v nvcc >/dev/null; then
    for d in /usr/local/cuda/bin /usr/local/cuda-*/bin; do
      [[ -x $d/nvcc ]] && export PATH=$d:$PATH && break
    done
  fi
  # NCCL's header (ProcessGroupNCCL.hpp includes it): the system's, else the pip package's.
  nccl_include=
  if [[ ! -e /usr/include/nccl.h ]]; then
    site=$("$python" -c 'import site; print(" ".join(site.getsitepackages()))')
    nccl_h=$(find $site -path '*nvidia*' -name nccl.h 2>/dev/null | head -1)
    [[ -n $nccl_h ]] && nccl_include=$(dirname "$nccl_h")
  fi
  echo "NCCL header: ${nccl_include:-/usr/include (or none)}" | tee -a "$out/summary.txt"
  torch_include=$("$python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "include"))')
  {
    echo "toolchain: $(c++ --version 2>&1 | head -1); $(cmake --version | head -1);" \
      "nvcc: $(command -v nvcc >/dev/null && nvcc --version | tail -1 || echo none)"
    if [[ -e $torch_include/gloo/algorithm.h ]]; then
      echo "torch's include has Gloo's headers: Gloo and NCCL both build"
    else
      echo "torch's include lacks Gloo's headers: the build joins ranks over NCCL alone"
    fi
  } | tee -a "$out/summary.txt"
fi

# ---- Unpack the carried packages into a prefix the build points at. ----
unpack() {
  rm -rf "$prefix"
  mkdir -p "$prefix"
  local n=0
  for f in "$deps"/debs/*.deb; do
    if command -v dpkg-deb >/dev/null; then
      dpkg-deb -x "$f" "$prefix" || return 1
    else  # a .deb is an ar archive holding data.tar.{xz,zst,gz}
      local member
      member=$(ar t "$f" | grep '^data\.tar') || return 1
      ar p "$f" "$member" >"$prefix/.member" && tar -xf "$prefix/.member" -C "$prefix" || return 1
      rm -f "$prefix/.member"
    fi
    n=$((n + 1))
  done
  echo "unpacked $n packages into $prefix"
  "$prefix/usr/bin/protoc" --version
}
if wants deps; then
  run_step deps unpack || finish
fi
libdir=$prefix/usr/lib/x86_64-linux-gnu
export PATH=$prefix/usr/bin:$PATH
export LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# .pc files say prefix=/usr: the sysroot puts their paths under the prefix.
export PKG_CONFIG_LIBDIR=$libdir/pkgconfig:$prefix/usr/share/pkgconfig
export PKG_CONFIG_SYSROOT_DIR=$prefix
export RUDDER_GOLDEN_DIR=$deps/golden

# ---- Configure, and check every dependency came from the prefix (protoc and libprotobuf
# from the same package). ----
configure() {
  local extra=()
  command -v ninja >/dev/null && extra+=(-G Ninja)
  if [[ $cpu_mode != 1 ]]; then
    extra+=(-DTORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}")
    # ATen's headers need C++20 from PyTorch 2.12 on.
    local major minor
    IFS=. read -r major minor _ <<<"$torch_version"
    if ((major > 2 || (major == 2 && minor >= 12))); then extra+=(-DCMAKE_CXX_STANDARD=20); fi
    [[ -n ${nccl_include:-} ]] && extra+=("-DCMAKE_CXX_FLAGS=-isystem $nccl_include")
    # The wheel's libtorch carries its own libgomp; Rudder's CPU kernels would bring the
    # system's beside it. They stay single-threaded here, as in the runs measured so far.
    extra+=(-DRUDDER_OPENMP=OFF)
  fi
  cmake -S "$root" -B "$build" "${extra[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$prefix/usr;$torch_prefix" \
    -DRUDDER_BUILD_TESTS=ON -DRUDDER_BUILD_BENCH=ON || return 1
  local bad=0
  # A CUDA libtorch must give the decode step its CUDA graphs (and with nvcc, Rudder's kernels).
  if [[ $cpu_mode != 1 ]] && ! grep -q "Decode step CUDA graphs: on" "$out/configure.log"; then
    echo "configure did not turn the decode step's CUDA graphs on"
    return 1
  fi
  if [[ $cpu_mode != 1 ]] && ! grep -q "Rudder's CUDA kernels: on" "$out/configure.log"; then
    echo "WARNING: Rudder's CUDA kernels are not built (no nvcc?): RoPE and SwiGLU run as libtorch ops"
  fi
  echo "where each dependency was found:"
  for var in Protobuf_PROTOC_EXECUTABLE Protobuf_INCLUDE_DIR Protobuf_LIBRARY_RELEASE yaml-cpp_DIR \
    nlohmann_json_DIR prometheus-cpp_DIR civetweb_DIR Boost_DIR GTest_DIR OPENSSL_INCLUDE_DIR \
    PCRE2_INCLUDEDIR UTF8PROC_INCLUDEDIR Torch_DIR; do
    local value
    value=$(grep -E "^$var:[A-Z]+=" "$build/CMakeCache.txt" | head -1 | cut -d= -f2-)
    printf '  %-28s %s\n' "$var" "${value:-(not in the cache)}"
    if [[ $var == Protobuf_* && $value != "$prefix"* ]]; then bad=1; fi
  done
  local protoc_version header_version
  protoc_version=$("$prefix/usr/bin/protoc" --version | awk '{print $2}')
  header_version=$(grep -m1 -E '^#define GOOGLE_PROTOBUF_VERSION ' \
    "$prefix/usr/include/google/protobuf/stubs/common.h" | awk '{print $3}')
  echo "protoc $protoc_version, headers $header_version"
  if ((bad)); then
    echo "protobuf was not taken from $prefix: protoc and libprotobuf must come from one package"
    return 1
  fi
}
if wants configure; then
  run_step configure configure || finish
  grep -hE "CUDA graphs:|CUDA kernels|WARNING: Rudder" "$out/configure.log" | tee -a "$out/summary.txt"
fi

# ---- Build. ----
if wants build; then
  targets=()
  for t in ${RUDDER_GPU_CHECK_TARGETS:-}; do targets+=(--target "$t"); done
  # Ninja keeps going past a failed file, so one run lists every compile error.
  keep_going=()
  grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja' "$build/CMakeCache.txt" && keep_going=(-- -k 0)
  run_step build cmake --build "$build" -j "$jobs" "${targets[@]}" "${keep_going[@]}" || {
    grep -E "error:|Error [0-9]" "$out/build.log" | head -60
    finish
  }
fi

# ---- Benchmarks beside PyTorch-Python (the same python3 that holds this torch). ----
if wants bench; then
  # The dry run's baseline is Debian's python3-torch, which /usr/bin/python3 has (the python3
  # first on PATH may not).
  if [[ $cpu_mode == 1 ]]; then
    export RUDDER_BENCH_PYTHON=${RUDDER_PYTHON:-/usr/bin/python3}
  else
    export RUDDER_BENCH_PYTHON=${RUDDER_PYTHON:-python3}
  fi
  known_benches=decode,dpo_step,dpo_step_large,dpo_step_unfused
  benches=${RUDDER_GPU_CHECK_BENCHES:-$known_benches}
  for b in ${benches//,/ }; do
    if [[ ",$known_benches," != *",$b,"* ]]; then
      note "RUDDER_GPU_CHECK_BENCHES: unknown benchmark '$b' (known: $known_benches)"
      summary+=("FAIL  bench: unknown benchmark '$b'")
      failed=1
      finish
    fi
  done
  # bench_wanted NAME TOOL: NAME is among the benches asked for and TOOL was built.
  bench_wanted() { [[ ",$benches," == *",$1,"* && -x "$build/bench/$2" ]]; }
  # Both sides on the GPU (decode in float32, the DPO step under bf16 autocast).
  bench_device=cpu
  [[ $cpu_mode == 1 ]] || bench_device=cuda
  ran_bench=0
  if bench_wanted decode bench_decode; then
    ran_bench=1
    run_step bench_decode "$build/bench/bench_decode" --seconds 1 --sizes 10M,100M --grpo 0 \
      --device "$bench_device"
    if [[ $cpu_mode != 1 ]]; then
      # The same decode steps without CUDA graphs, the engine alone: what the graphs give.
      RUDDER_CUDA_GRAPHS=0 run_step bench_decode_no_graphs "$build/bench/bench_decode" \
        --seconds 1 --sizes 100M --grpo 0 --python 0 --device cuda
    fi
  fi
  # The DPO step in bf16 autocast: the benchmarks' small batch (launch-bound on a GPU), and a
  # batch large enough for the matrix units (the MFU figure of the ~100M model).
  step_flags=(--device "$bench_device" --dtype bf16 --seconds 1)
  [[ $cpu_mode == 1 ]] && step_flags=(--device cpu --dtype bf16 --seconds 0 --steps 1 --sizes 10M)
  if bench_wanted dpo_step bench_dpo_step; then
    ran_bench=1
    run_step bench_dpo_step "$build/bench/bench_dpo_step" "${step_flags[@]}"
  fi
  if [[ $cpu_mode != 1 ]] && bench_wanted dpo_step_large bench_dpo_step; then
    ran_bench=1
    # Both steps, kernel by kernel: Python's to $out/python_dpo_profile.txt (torch.profiler),
    # Rudder's to $out/rudder_dpo_profile_100M.txt (device time by kind, then by kernel).
    RUDDER_BENCH_PROFILE="$out/python_dpo_profile.txt" run_step bench_dpo_step_large \
      "$build/bench/bench_dpo_step" "${step_flags[@]}" --pairs 16 --seq 512 --sizes 100M \
      --profile "$out/rudder_dpo_profile.txt"
  fi
  if [[ $cpu_mode != 1 ]] && bench_wanted dpo_step_unfused bench_dpo_step; then
    ran_bench=1
    # The same step without Rudder's fusions (projections joined, its RoPE and SwiGLU
    # kernels, libtorch's fused RMSNorm and AdamW): what they give together; the profiles
    # tell them apart.
    RUDDER_FUSE_PROJECTIONS=0 RUDDER_CUDA_KERNELS=0 RUDDER_FUSED_NORM=0 RUDDER_FUSED_ADAMW=0 \
      run_step bench_dpo_step_large_unfused "$build/bench/bench_dpo_step" "${step_flags[@]}" \
      --pairs 16 --seq 512 --sizes 100M
  fi
  if ((ran_bench)); then
    grep -hE "^(bench|model|10M|100M|batch|grpo|Llama|(1|8|32) )|WARNING" \
      "$out"/bench_*.log 2>/dev/null | head -60 | tee -a "$out/summary.txt"
  else
    summary+=("SKIP  bench: none of $benches ran (not built, or GPU-only in the CPU dry run)")
  fi
fi

# ---- Unit and golden tests (integration and service tests start processes on the CPU path;
# RUDDER_GPU_CHECK_TESTS='.' runs everything). ----
if wants test; then
  if [[ -n ${RUDDER_GPU_CHECK_TESTS:-} ]]; then
    select=(-R "$RUDDER_GPU_CHECK_TESTS")
  else
    select=(-L unit)
  fi
  # The golden tests run their models and ops on the GPU (tests/support/tensor_testing.h).
  [[ $cpu_mode != 1 ]] && ((gpus > 0)) && export RUDDER_TEST_DEVICE=cuda
  # Two threads per test, as CI's 2-core machine: $jobs tests each taking every core starve
  # one another (the training tests ran past 300 s that way).
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
  # With OMP_NUM_THREADS set, libgomp's idle threads spin; two such tests sharing cores then
  # crawl (the DMoERM test: 49 s alone, past 200 s beside the ARM test on 2 cores). Passive
  # waiting: 62 s beside it.
  export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
  run_step test ctest --test-dir "$build" --output-on-failure -j "$jobs" --timeout "${RUDDER_GPU_CHECK_TEST_TIMEOUT:-300}" "${select[@]}"
  grep -E "tests passed|Skipped|Not Run" "$out/test.log" | tee -a "$out/summary.txt"
  grep -E "Cuda.*(Passed|Failed|Skipped|\*\*\*)" "$out/test.log" | tee -a "$out/summary.txt"
fi

# ---- Data parallelism over NCCL: two ranks on two GPUs, one rank on one GPU. ----
ddp() {
  local ranks=$1 dir
  dir=$(mktemp -d)
  cat >"$dir/tiny.yaml" <<'EOF'
name: ddp
seed: 7
device: cuda
model: {hidden_size: 32, num_layers: 2, num_heads: 2, num_kv_heads: 1, intermediate_size: 64, max_position_embeddings: 64}
data: {synthetic: {tasks: [mixed], num_train: 40, num_eval: 8}, max_length: 32, max_prompt_length: 16}
sft: {}
optimizer: {lr: 1.0e-3}
training: {max_steps: 10, micro_batch_size: 2, global_batch_size: 8, log_every: 1}
distributed: {backend: nccl}
eval: {num_prompts: 4, sampling: {max_new_tokens: 4, temperature: 0}}
EOF
  "$build/app/rudder" launch --nproc "$ranks" -- train "$dir/tiny.yaml" --set "output_dir=$dir/out"
}
if wants ddp; then
  if [[ $cpu_mode == 1 ]]; then
    summary+=("SKIP  ddp: no GPU in the CPU dry run")
  elif ((gpus >= 2)); then
    run_step ddp_nccl_2ranks ddp 2
  elif ((gpus == 1)); then
    note "one GPU: data parallelism runs as one rank (NCCL needs a GPU per rank)"
    run_step ddp_nccl_1rank ddp 1
  else
    summary+=("SKIP  ddp: no GPU")
  fi
fi

finish
