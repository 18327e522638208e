#include "core/proto_http.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/http_server.h"
#include "proto/rudder.pb.h"

namespace rudder::core {
namespace {

TEST(ProtoHttp, JsonDepthCountsOnlyStructure) {
  EXPECT_EQ(json_depth(R"({"a": [1, {"b": 2}]})", 64), 3);
  EXPECT_EQ(json_depth(R"({"a": "[[[[{{{{"})", 64), 1);
  EXPECT_EQ(json_depth(R"({"a": "\"[[["})", 64), 1);
  EXPECT_EQ(json_depth(std::string(1000, '['), 10), 11);  // stops early
}

TEST(ProtoHttp, AcceptHeaderPicksTheEncoding) {
  ScoreResponse msg;
  msg.add_rewards(1.5f);
  msg.set_model_version("v1");
  HttpRequest req;
  HttpResponse r = message_response(req, msg);
  EXPECT_EQ(r.content_type, "application/json");
  EXPECT_EQ(r.body, R"({"rewards":[1.5],"model_version":"v1"})");
  req.headers["accept"] = "application/x-protobuf";
  r = message_response(req, msg);
  EXPECT_EQ(r.content_type, "application/x-protobuf");
  ScoreResponse back;
  ASSERT_TRUE(back.ParseFromString(r.body));
  EXPECT_EQ(back.model_version(), "v1");
}

TEST(ProtoHttp, ParseMessageChecksContentType) {
  HttpRequest req;
  req.body = R"({"items":[{"prompt":"p","response":"r"}]})";
  ScoreRequest out;
  parse_message(req, &out);  // no Content-Type: JSON
  EXPECT_EQ(out.items(0).response(), "r");
  req.headers["content-type"] = "text/plain";
  EXPECT_THROW(parse_message(req, &out), UnsupportedMediaType);
}

TEST(ProtoHttp, HandlersAreTestableWithoutSockets) {
  HttpServer server(HttpServerOptions{});
  server.route("POST", "/v1/echo", [](const HttpRequest& r) {
    ScoreRequest m;
    parse_message(r, &m);
    return message_response(r, m);
  });
  HttpRequest req;
  req.method = "POST";
  req.path = "/v1/echo";
  req.body = "{not json";
  const HttpResponse bad = server.handle(req);
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.body.find("\"code\":400"), std::string::npos);
  req.body = R"({"items":[]})";
  EXPECT_EQ(server.handle(req).status, 200);
  req.path = "/healthz";
  req.method = "GET";
  EXPECT_EQ(server.handle(req).status, 200);
}

TEST(ProtoHttp, ErrorBodyIsValidJsonEvenForBadUtf8) {
  const HttpResponse r = error_response(400, "bad byte \xff here");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.body.rfind(R"({"error":{"code":400,"message":"bad byte )", 0), 0u) << r.body;
}

}  // namespace
}  // namespace rudder::core
