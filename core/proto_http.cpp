#include "core/proto_http.h"

#include <google/protobuf/message.h>
#include <google/protobuf/util/json_util.h>

#include "core/error.h"

namespace rudder::core {
namespace {

bool has_media_type(std::string_view header_value, std::string_view type) {
  return header_value.find(type) != std::string_view::npos;
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

void parse_message(const HttpRequest& request, google::protobuf::Message* out) {
  const std::string content_type = request.header("content-type");
  Wire wire = Wire::kJson;
  if (has_media_type(content_type, kProtobufType)) {
    wire = Wire::kProtobuf;
  } else if (!content_type.empty() && !has_media_type(content_type, kJsonType)) {
    throw UnsupportedMediaType(str("unsupported Content-Type '", content_type, "': expected ",
                                   kJsonType, " or ", kProtobufType));
  }
  decode_message(request.body, wire, out, request.max_json_depth);
}

HttpResponse message_response(const HttpRequest& request, const google::protobuf::Message& message,
                              int status) {
  const Wire wire =
      has_media_type(request.header("accept"), kProtobufType) ? Wire::kProtobuf : Wire::kJson;
  HttpResponse response;
  response.status = status;
  response.content_type = std::string(media_type(wire));
  response.body = encode_message(message, wire);
  return response;
}

}  // namespace rudder::core
