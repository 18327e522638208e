// Helpers shared by the benchmarks: the benchmark models, flags, and running the Python side.
#pragma once

#include <cstdio>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "models/model_spec.h"
#include "proto/rudder.pb.h"

namespace rudder::bench {

/// A Llama with the byte vocabulary (260) and 512 positions.
inline models::ModelSpec llama_spec(int64_t hidden, int64_t layers, int64_t heads, int64_t kv_heads,
                                    int64_t intermediate) {
  models::ModelSpec s;
  s.vocab_size = 260;
  s.hidden_size = hidden;
  s.num_layers = layers;
  s.num_heads = heads;
  s.num_kv_heads = kv_heads;
  s.head_dim = hidden / heads;
  s.intermediate_size = intermediate;
  s.max_positions = 512;
  return s;
}

/// The ~9M-parameter Llama of the forward, SFT and small DPO benchmarks.
inline models::ModelSpec llama_10m() { return llama_spec(256, 12, 4, 2, 688); }

/// torch.optim.AdamW's defaults (betas 0.9/0.999, eps 1e-8, no weight decay), as the Python sides
/// use.
inline OptimizerConfig adamw_defaults() {
  OptimizerConfig c;
  c.set_beta1(0.9);
  c.set_beta2(0.999);
  c.set_eps(1e-8);
  return c;
}

/// "--name value" pairs; `fallback` values for the rest.
inline std::map<std::string, std::string> parse_flags(int argc, char** argv,
                                                      std::map<std::string, std::string> fallback) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag.rfind("--", 0) != 0 || fallback.count(flag.substr(2)) == 0) {
      throw std::invalid_argument("unknown flag '" + flag + "'");
    }
    fallback[flag.substr(2)] = argv[i + 1];
  }
  return fallback;
}

/// Runs `command` (stderr merged into stdout) and returns its output lines; throws when it
/// cannot start or exits non-zero.
inline std::vector<std::string> run_lines(const std::string& command) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("cannot run " + command);
  std::vector<std::string> lines;
  char line[1024];
  while (fgets(line, sizeof(line), pipe) != nullptr) lines.emplace_back(line);
  if (pclose(pipe) != 0) {
    std::string text;
    for (const auto& l : lines) text += l;
    throw std::runtime_error("failed: " + command + "\n" + text +
                             "(is python3-torch installed? make bench installs it)");
  }
  return lines;
}

}  // namespace rudder::bench
