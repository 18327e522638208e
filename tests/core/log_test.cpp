#include "core/log.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace rudder::core {
namespace {

TEST(Log, LevelsParseAndFilter) {
  EXPECT_EQ(parse_log_level("debug"), LogLevel::kDebug);
  EXPECT_EQ(parse_log_level("warn"), LogLevel::kWarn);
  EXPECT_THROW(parse_log_level("loud"), InvalidArgument);

  set_log_level(LogLevel::kWarn);
  ::testing::internal::CaptureStderr();
  RUDDER_LOG(kInfo) << "hidden";
  RUDDER_LOG(kError) << "shown " << 42 << "\nsecond line";
  const std::string out = ::testing::internal::GetCapturedStderr();
  set_log_level(LogLevel::kInfo);
  EXPECT_EQ(out.find("hidden"), std::string::npos);
  ASSERT_NE(out.find("ERROR shown 42\\nsecond line"), std::string::npos) << out;
  // One line per event, starting with an ISO-8601 UTC timestamp.
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1);
  EXPECT_EQ(out[4], '-');
  EXPECT_EQ(out[10], 'T');
  EXPECT_EQ(out[23], 'Z');
}

}  // namespace
}  // namespace rudder::core
