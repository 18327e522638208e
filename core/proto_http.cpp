#include "core/proto_http.h"

#include <google/protobuf/message.h>
#include <google/protobuf/util/json_util.h>

#include "core/error.h"

namespace rudder::core {
namespace {

// Whether an Accept header lists `type` (a list of media ranges; case does not matter).
bool accepts(std::string_view accept, std::string_view type) {
  return ascii_lowercase(accept).find(type) != std::string::npos;
}

}  // namespace

std::string_view media_type(Wire wire) { return wire == Wire::kJson ? kJsonType : kProtobufType; }

int json_depth(std::string_view json, int limit) {
  int depth = 0;
  int deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"')
      in_string = true;
    else if (c == '{' || c == '[') {
      deepest = std::max(deepest, ++depth);
      if (deepest > limit) return deepest;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return deepest;
}

std::string encode_message(const google::protobuf::Message& message, Wire wire) {
  std::string out;
  if (wire == Wire::kProtobuf) {
    RUDDER_ASSERT(message.SerializeToString(&out), "serializing ", message.GetTypeName());
    return out;
  }
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  const auto status = google::protobuf::util::MessageToJsonString(message, &out, options);
  RUDDER_ASSERT(status.ok(), "printing ", message.GetTypeName(), ": ", status.message());
  return out;
}

void decode_message(std::string_view body, Wire wire, google::protobuf::Message* out,
                    int max_json_depth) {
  const std::string type = out->GetTypeName();
  if (wire == Wire::kProtobuf) {
    RUDDER_CHECK(out->ParseFromArray(body.data(), static_cast<int>(body.size())),
                 "malformed protobuf body: not a valid ", type);
    return;
  }
  const int depth = json_depth(body, max_json_depth);
  RUDDER_CHECK(depth <= max_json_depth, "JSON body nested deeper than ", max_json_depth, " levels");
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(body.data(), body.size()), out, options);
  RUDDER_CHECK(status.ok(), "malformed JSON body for ", type, ": ", status.message());
}

Wire request_wire(const HttpRequest& request) {
  const std::string content_type = request.header("content-type");
  if (trim_whitespace(content_type).empty()) return Wire::kJson;
  // type/subtype, then parameters: "application/json; charset=utf-8".
  const std::string lower = ascii_lowercase(content_type);
  const std::string_view value(lower);
  const size_t semicolon = value.find(';');
  const std::string_view type = trim_whitespace(value.substr(0, semicolon));
  if (type == kProtobufType) return Wire::kProtobuf;
  if (type != kJsonType) {
    throw UnsupportedMediaType(str("unsupported Content-Type '", content_type, "': expected ",
                                   kJsonType, " or ", kProtobufType));
  }
  std::string_view params =
      semicolon == std::string_view::npos ? std::string_view() : value.substr(semicolon + 1);
  while (!params.empty()) {
    const size_t end = params.find(';');
    const std::string_view param = trim_whitespace(params.substr(0, end));
    params = end == std::string_view::npos ? std::string_view() : params.substr(end + 1);
    if (param.rfind("charset=", 0) != 0) continue;
    std::string_view charset = trim_whitespace(param.substr(8));
    if (charset.size() >= 2 && charset.front() == '"' && charset.back() == '"')
      charset = charset.substr(1, charset.size() - 2);
    if (charset != "utf-8" && charset != "utf8") {
      throw UnsupportedMediaType(
          str("unsupported charset in Content-Type '", content_type, "': JSON bodies are UTF-8"));
    }
  }
  return Wire::kJson;
}

void parse_message(const HttpRequest& request, google::protobuf::Message* out) {
  decode_message(request.body, request_wire(request), out, request.max_json_depth);
}

HttpResponse message_response(const HttpRequest& request, const google::protobuf::Message& message,
                              int status) {
  const Wire wire =
      accepts(request.header("accept"), kProtobufType) ? Wire::kProtobuf : Wire::kJson;
  HttpResponse response;
  response.status = status;
  response.content_type = std::string(media_type(wire));
  response.body = encode_message(message, wire);
  return response;
}

}  // namespace rudder::core
