// The subcommands of the `rudder` CLI. Each takes its arguments (after the subcommand name)
// and returns the process exit code: 0 success, 1 failure, 2 bad usage.
#pragma once

#include <string>
#include <vector>

namespace rudder::app {

/// The arguments after the subcommand name.
using Args = std::vector<std::string>;

/// `rudder version`: version, git hash, libtorch, BLAS, threads, CUDA.
int run_version(const Args& args);

/// `rudder config check FILE [--set k=v]...` and `rudder config reference`.
int run_config(const Args& args);

/// `rudder train CONFIG [--set k=v]... [--resume auto|PATH] [--allow-config-change]`.
int run_train(const Args& args);

/// `rudder launch --nproc N -- train CONFIG ...`: N ranks of `self` on this machine.
int run_launch(const Args& args, const std::string& self);

/// `rudder eval CONFIG --policy DIR --reference DIR [--reward DIR]`: the win-rate table.
int run_eval(const Args& args);

/// `rudder serve reward|rollout CONFIG [--set k=v]...`: a server until SIGTERM.
int run_serve(const Args& args);

/// `rudder score CONFIG --in IN.jsonl --out OUT.jsonl`: scores a JSONL file.
int run_score(const Args& args);

/// `rudder generate CONFIG --prompts IN.jsonl [--out OUT.jsonl] [--n N] [--max-batch B]`:
/// completions of a JSONL file of prompts with rollout.sampling, on rollout.endpoints when set,
/// else with model.path in process.
int run_generate(const Args& args);

/// `rudder demo [--output DIR]`: SFT -> reward model -> DPO on the embedded default, then the
/// table.
int run_demo(const Args& args);

/// The top-level help text.
std::string usage();

}  // namespace rudder::app
