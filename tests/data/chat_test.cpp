#include "data/chat.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "proto/rudder.pb.h"

namespace rudder::data {
namespace {

TEST(Chat, RolesGetTheirPrefixesAndSuffixes) {
  ChatTemplate t;
  t.set_system_prefix("<s>");
  t.set_system_suffix("</s>");
  t.set_user_prefix("<u>");
  t.set_user_suffix("</u>");
  t.set_assistant_prefix("<a>");
  t.set_assistant_suffix("</a>");
  const std::vector<ChatMessage> m = {
      {"system", "be brief"}, {"user", "hi"}, {"assistant", "hello"}, {"user", "bye"}};
  EXPECT_EQ(format_chat(m, t, true), "<s>be brief</s><u>hi</u><a>hello</a><u>bye</u><a>");
  EXPECT_EQ(format_chat(m, t, false), "<s>be brief</s><u>hi</u><a>hello</a><u>bye</u>");
  EXPECT_THROW(format_chat({{"tool", "x"}}, t, false), core::InvalidArgument);
  // The assistant turns' ranges: content and suffix, what a model learns of them.
  std::vector<TextSpan> spans;
  const std::vector<ChatMessage> two = {{"user", "hi"}, {"assistant", "hello"}, {"assistant", ""}};
  const std::string text = format_chat(two, t, true, &spans);
  ASSERT_EQ(spans.size(), 2u);
  EXPECT_EQ(text.substr(spans[0].first, spans[0].second - spans[0].first), "hello</a>");
  EXPECT_EQ(text.substr(spans[1].first, spans[1].second - spans[1].first), "</a>");
  EXPECT_EQ(text.substr(spans[1].second), "<a>");
}

}  // namespace
}  // namespace rudder::data
