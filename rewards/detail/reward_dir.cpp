#include "rewards/detail/reward_dir.h"

#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace rudder::rewards::detail {

namespace fs = std::filesystem;

void write_reward_config(const std::string& dir, const nlohmann::json& config) {
  fs::create_directories(dir);
  const fs::path tmp = fs::path(dir) / "reward_config.json.tmp";
  {
    std::ofstream out(tmp);
    out << config.dump(2) << "\n";
    RUDDER_CHECK(out.good(), tmp.string(), ": write failed");
  }
  fs::rename(tmp, fs::path(dir) / "reward_config.json");
}

nlohmann::json read_reward_config(const std::string& dir, const std::string& kind) {
  const fs::path path = fs::path(dir) / "reward_config.json";
  std::ifstream in(path);
  RUDDER_CHECK_T(core::NotFound, in.good(), path.string(),
                 ": cannot open (not a reward model directory?)");
  nlohmann::json c;
  try {
    c = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw core::InvalidArgument(core::str(path.string(), ": malformed JSON: ", e.what()));
  }
  RUDDER_CHECK(c.is_object() && c.contains("kind") && c.at("kind").is_string(), path.string(),
               ": no string \"kind\"");
  RUDDER_CHECK(kind.empty() || c.at("kind") == kind, path.string(), ": kind '",
               c.at("kind").get<std::string>(), "' is not a ", kind, " reward model");
  return c;
}

}  // namespace rudder::rewards::detail
