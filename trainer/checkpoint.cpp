#include "trainer/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>

#include <google/protobuf/util/json_util.h>
#include <torch/torch.h>

#include "core/config.h"
#include "core/digest.h"
#include "core/error.h"
#include "core/files.h"
#include "core/log.h"
#include "core/version.h"

namespace rudder::trainer {
namespace {

namespace fs = std::filesystem;
using core::str;

constexpr const char* kFiles[] = {"model.safetensors", "optimizer.safetensors", "rng.safetensors",
                                  "state.safetensors", "config.yaml"};

// "method/<name>" and "rank<r>/<name>" entries of state.safetensors.
models::TensorMap flatten_state(const CheckpointState& s) {
  models::TensorMap out;
  for (const auto& [name, t] : s.method_state) out.emplace("method/" + name, t);
  for (size_t r = 0; r < s.rank_states.size(); ++r) {
    for (const auto& [name, t] : s.rank_states[r])
      out.emplace("rank" + std::to_string(r) + "/" + name, t);
  }
  return out;
}

void unflatten_state(const models::TensorMap& flat, const std::string& source, CheckpointState* s) {
  for (const auto& [key, t] : flat) {
    const size_t slash = key.find('/');
    RUDDER_CHECK(slash != std::string::npos, source, ": unexpected tensor '", key, "'");
    const std::string scope = key.substr(0, slash), name = key.substr(slash + 1);
    if (scope == "method") {
      s->method_state.emplace(name, t);
      continue;
    }
    RUDDER_CHECK(scope.rfind("rank", 0) == 0 && scope.size() > 4, source, ": unexpected tensor '",
                 key, "'");
    const size_t rank = std::stoul(scope.substr(4));
    RUDDER_CHECK(rank < 65536, source, ": rank ", rank, " in '", key, "' is out of range");
    if (s->rank_states.size() <= rank) s->rank_states.resize(rank + 1);
    s->rank_states[rank].emplace(name, t);
  }
}

std::string step_name(uint64_t step) {
  std::ostringstream out;
  out << "step-" << std::setw(8) << std::setfill('0') << step;
  return out.str();
}

void fsync_path(const fs::path& path, bool directory) {
  const int fd = ::open(path.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  RUDDER_CHECK(fd >= 0, path.string(), ": cannot open for fsync: ", std::strerror(errno));
  const int rc = ::fsync(fd);
  ::close(fd);
  RUDDER_CHECK(rc == 0, path.string(), ": fsync failed: ", std::strerror(errno));
}

void write_text(const fs::path& path, const std::string& text) {
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    RUDDER_CHECK(out.good(), path.string(), ": write failed");
  }
  fsync_path(path, false);
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  RUDDER_CHECK(in.good(), path.string(), ": cannot open");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::pair<uint64_t, fs::path>> list_checkpoints(const fs::path& dir) {
  std::vector<std::pair<uint64_t, fs::path>> out;
  if (!fs::exists(dir)) return out;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_directory() || name.rfind("step-", 0) != 0) continue;
    try {
      out.emplace_back(std::stoull(name.substr(5)), entry.path());
    } catch (const std::exception&) {
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

CheckpointManifest read_manifest(const fs::path& dir) {
  const fs::path path = dir / "manifest.json";
  RUDDER_CHECK(fs::exists(path), dir.string(), ": incomplete checkpoint (no manifest.json)");
  CheckpointManifest manifest;
  google::protobuf::util::JsonParseOptions options;
  const auto status =
      google::protobuf::util::JsonStringToMessage(read_text(path), &manifest, options);
  RUDDER_CHECK(status.ok(), path.string(), ": corrupt manifest: ", status.message());
  return manifest;
}

// Removes `path`, or says in the log why it could not (`what` names it there).
void remove_or_warn(const fs::path& path, const char* what) {
  std::error_code ec;
  core::remove_tree(path.string(), ec);
  if (ec) RUDDER_LOG(kWarn) << "cannot remove " << what << path.string() << ": " << ec.message();
}

}  // namespace

std::string save_checkpoint(const std::string& dir_text, const CheckpointState& state,
                            uint32_t keep_last) {
  const fs::path dir(dir_text);
  fs::create_directories(dir);
  const std::string name = step_name(state.step);
  const fs::path tmp = dir / (".tmp-" + name + "-" + std::to_string(::getpid()));
  core::remove_tree(tmp.string());
  fs::create_directories(tmp);

  models::save_safetensors((tmp / "model.safetensors").string(), state.model, {{"format", "pt"}});
  models::save_safetensors((tmp / "optimizer.safetensors").string(), state.optimizer);
  models::save_safetensors((tmp / "rng.safetensors").string(), {{"cpu", state.rng_cpu}});
  models::save_safetensors((tmp / "state.safetensors").string(), flatten_state(state));
  write_text(tmp / "config.yaml", core::config_to_yaml(state.config));

  CheckpointManifest manifest;
  manifest.set_step(state.step);
  manifest.set_epoch(state.sampler.epoch);
  manifest.set_data_position(state.sampler.index);
  manifest.set_world_size(state.world_size);
  manifest.set_global_batch_size(state.config.training().global_batch_size());
  manifest.set_rudder_version(core::rudder_version());
  manifest.set_created_unix(
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count());
  for (const char* file : kFiles) {
    auto* entry = manifest.add_files();
    entry->set_path(file);
    entry->set_size_bytes(fs::file_size(tmp / file));
    entry->set_sha256(core::sha256_file((tmp / file).string()));
  }
  *manifest.mutable_config() = state.config;
  std::string json;
  google::protobuf::util::JsonPrintOptions print;
  print.add_whitespace = true;
  print.preserve_proto_field_names = true;
  RUDDER_ASSERT(google::protobuf::util::MessageToJsonString(manifest, &json, print).ok());
  write_text(tmp / "manifest.json", json);
  fsync_path(tmp, true);

  const fs::path final_path = dir / name;
  core::remove_tree(
      final_path.string());  // a complete checkpoint of the same step from an earlier attempt
  fs::rename(tmp, final_path);
  fsync_path(dir, true);
  const fs::path latest_tmp = dir / ("latest.tmp-" + std::to_string(::getpid()));
  write_text(latest_tmp, name + "\n");
  fs::rename(latest_tmp, dir / "latest");
  fsync_path(dir, true);

  if (keep_last > 0) {
    auto all = list_checkpoints(dir);
    while (all.size() > keep_last) {
      // An old checkpoint that will not go is worth a warning, not the run.
      if (all.front().second != final_path) remove_or_warn(all.front().second, "old checkpoint ");
      all.erase(all.begin());
    }
  }
  return final_path.string();
}

CheckpointManifest verify_checkpoint(const std::string& path_text) {
  const fs::path dir(path_text);
  CheckpointManifest manifest = read_manifest(dir);
  for (const auto& file : manifest.files()) {
    const fs::path p = dir / file.path();
    RUDDER_CHECK(fs::exists(p), p.string(), ": missing from the checkpoint");
    RUDDER_CHECK(fs::file_size(p) == file.size_bytes(), p.string(), ": ", fs::file_size(p),
                 " bytes, the manifest says ", file.size_bytes(), " (truncated?)");
    RUDDER_CHECK(core::sha256_file(p.string()) == file.sha256(), p.string(),
                 ": SHA-256 differs from the manifest (altered)");
  }
  return manifest;
}

CheckpointState load_checkpoint(const std::string& path_text) {
  const fs::path dir(path_text);
  const CheckpointManifest manifest = verify_checkpoint(path_text);
  CheckpointState s;
  s.step = manifest.step();
  s.sampler = {manifest.epoch(), manifest.data_position()};
  s.world_size = manifest.world_size();
  s.config = manifest.config();
  s.model = models::load_safetensors((dir / "model.safetensors").string()).tensors;
  s.optimizer = models::load_safetensors((dir / "optimizer.safetensors").string()).tensors;
  const auto rng = models::load_safetensors((dir / "rng.safetensors").string()).tensors;
  RUDDER_CHECK(rng.count("cpu"), (dir / "rng.safetensors").string(), ": no 'cpu' generator state");
  s.rng_cpu = rng.at("cpu");
  const fs::path state = dir / "state.safetensors";
  const bool listed = std::any_of(manifest.files().begin(), manifest.files().end(),
                                  [](const auto& f) { return f.path() == "state.safetensors"; });
  if (listed) unflatten_state(models::load_safetensors(state.string()).tensors, state.string(), &s);
  return s;
}

std::string find_resume_checkpoint(const std::string& dir_text) {
  const fs::path dir(dir_text);
  // Leftovers of interrupted saves are never resumed from.
  if (fs::exists(dir)) {
    for (const auto& entry : fs::directory_iterator(dir)) {
      if (entry.path().filename().string().rfind(".tmp-", 0) == 0) {
        RUDDER_LOG(kWarn) << "removing incomplete checkpoint " << entry.path().string();
        // Never resumed from either way; another rank may be removing it too.
        remove_or_warn(entry.path(), "");
      }
    }
  }
  const auto all = list_checkpoints(dir);
  const fs::path latest = dir / "latest";
  if (all.empty()) {
    RUDDER_CHECK(!fs::exists(latest), latest.string(), " exists but ", dir.string(),
                 " holds no checkpoint");
    return "";
  }
  RUDDER_CHECK(fs::exists(latest), dir.string(),
               " holds checkpoints but no 'latest' pointer; pass --resume PATH");
  std::string target = read_text(latest);
  while (!target.empty() && (target.back() == '\n' || target.back() == '\r')) target.pop_back();
  const auto it = std::find_if(all.begin(), all.end(),
                               [&](const auto& c) { return c.second.filename() == target; });
  RUDDER_CHECK(it != all.end(), latest.string(), " names '", target,
               "', which is not a checkpoint in ", dir.string(), "; pass --resume PATH");
  for (auto candidate = std::make_reverse_iterator(it + 1); candidate != all.rend(); ++candidate) {
    try {
      verify_checkpoint(candidate->second.string());
      if (candidate->second.filename() != target) {
        RUDDER_LOG(kWarn) << "resuming from the older checkpoint " << candidate->second.string();
      }
      return candidate->second.string();
    } catch (const core::InvalidArgument& e) {
      RUDDER_LOG(kError) << "checkpoint refused: " << e.what();
    }
  }
  throw core::InvalidArgument(str("no checkpoint in ", dir.string(), " passes verification"));
}

}  // namespace rudder::trainer
