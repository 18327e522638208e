// Reading and writing the safetensors format (Hugging Face): an 8-byte little-endian header
// length, a JSON header mapping names to {dtype, shape, data_offsets}, then the raw bytes.
//
// Reading maps the file (mmap) and copies each tensor out, so the returned tensors own their
// memory. Every malformed input (truncated file, bad header, offsets out of range, sizes that do
// not match the shape) is an InvalidArgument naming the file and, where there is one, the tensor.
#pragma once

#include <map>
#include <string>

#include <ATen/core/Tensor.h>

namespace rudder::models {

/// Named tensors in name order (the order safetensors writes them).
using TensorMap = std::map<std::string, at::Tensor>;

/// What a safetensors file holds.
struct SafetensorsContent {
  TensorMap tensors;
  std::map<std::string, std::string> metadata;  // the header's "__metadata__"
};

/// Loads every tensor of `path` (F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL) onto the CPU.
SafetensorsContent load_safetensors(const std::string& path);

/// Writes `tensors` (moved to CPU, made contiguous) to `path` atomically: a temporary file in the
/// same directory, fsync, then rename. `metadata` goes into "__metadata__".
void save_safetensors(const std::string& path, const TensorMap& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace rudder::models
