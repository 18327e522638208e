#include "core/error.h"

#include <gtest/gtest.h>

namespace rudder::core {
namespace {

TEST(Errors, CheckThrowsTypedErrorsWithValues) {
  try {
    const int got = 3;
    RUDDER_CHECK(got == 4, "expected 4 heads, got ", got);
    FAIL();
  } catch (const InvalidArgument& e) {
    EXPECT_STREQ(e.what(), "expected 4 heads, got 3");
  }
  EXPECT_THROW(RUDDER_CHECK_T(NotFound, false, "x"), NotFound);
  try {
    RUDDER_ASSERT(1 + 1 == 3, "math");
    FAIL();
  } catch (const InternalError& e) {
    EXPECT_NE(std::string(e.what()).find("1 + 1 == 3 failed: math"), std::string::npos);
  }
}

}  // namespace
}  // namespace rudder::core
