// Protobuf messages over HTTP: the same message as `application/json` (proto3 JSON mapping)
// or `application/x-protobuf`, chosen by Content-Type (requests) and Accept (responses).
#pragma once

#include <string>
#include <string_view>

#include "core/http.h"

namespace google::protobuf {
class Message;
}

namespace rudder::core {

/// Which encoding a body uses.
enum class Wire { kJson, kProtobuf };

/// The encoding a request's Content-Type names: its media type, compared without case; absent
/// is JSON. Throws UnsupportedMediaType (415) for any other type, and for JSON with a charset
/// other than UTF-8 (RFC 8259 allows no other).
Wire request_wire(const HttpRequest& request);

/// Parses the body into `out` by its Content-Type (request_wire). Throws InvalidArgument (400)
/// for malformed bodies, unknown JSON fields and JSON nested deeper than `request.max_json_depth`;
/// throws UnsupportedMediaType (415) for other content types.
void parse_message(const HttpRequest& request, google::protobuf::Message* out);

/// Serializes `message` in the encoding the request's Accept header prefers (default JSON).
HttpResponse message_response(const HttpRequest& request, const google::protobuf::Message& message,
                              int status = 200);

/// Encodes `message` as a body of the given wire format.
std::string encode_message(const google::protobuf::Message& message, Wire wire);

/// Decodes `body` into `out`; throws InvalidArgument naming the message type on failure.
void decode_message(std::string_view body, Wire wire, google::protobuf::Message* out,
                    int max_json_depth = 64);

/// The media type of a wire format.
std::string_view media_type(Wire wire);

/// The deepest nesting of objects and arrays in `json` (strings skipped); stops counting past
/// `limit` + 1 so hostile input costs O(n).
int json_depth(std::string_view json, int limit);

}  // namespace rudder::core
