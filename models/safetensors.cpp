#include "models/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace rudder::models {
namespace {

using core::str;

struct DtypeInfo {
  const char* name;
  at::ScalarType type;
  size_t bytes;
};

constexpr DtypeInfo kDtypes[] = {
    {"F32", at::kFloat, 4},  {"F16", at::kHalf, 2}, {"BF16", at::kBFloat16, 2},
    {"F64", at::kDouble, 8}, {"I64", at::kLong, 8}, {"I32", at::kInt, 4},
    {"I16", at::kShort, 2},  {"I8", at::kChar, 1},  {"U8", at::kByte, 1},
    {"BOOL", at::kBool, 1},
};

const DtypeInfo* dtype_by_name(const std::string& name) {
  for (const auto& d : kDtypes) {
    if (name == d.name) return &d;
  }
  return nullptr;
}

const DtypeInfo* dtype_by_type(at::ScalarType type) {
  for (const auto& d : kDtypes) {
    if (type == d.type) return &d;
  }
  return nullptr;
}

// A read-only mapping of a whole file, unmapped on destruction.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    RUDDER_CHECK_T(core::NotFound, fd_ >= 0, path, ": cannot open: ", std::strerror(errno));
    struct stat st {};
    RUDDER_CHECK(::fstat(fd_, &st) == 0, path, ": cannot stat: ", std::strerror(errno));
    size_ = static_cast<size_t>(st.st_size);
    if (size_ > 0) {
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd_, 0);
      RUDDER_CHECK(p != MAP_FAILED, path, ": mmap failed: ", std::strerror(errno));
      data_ = static_cast<const uint8_t*>(p);
    }
  }
  ~MappedFile() {
    if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
    if (fd_ >= 0) ::close(fd_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  int fd_ = -1;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

void write_all(int fd, const void* data, size_t size, const std::string& path) {
  const auto* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    RUDDER_CHECK(n > 0, path, ": write failed: ", std::strerror(errno));
    p += n;
    size -= static_cast<size_t>(n);
  }
}

}  // namespace

SafetensorsContent load_safetensors(const std::string& path) {
  const MappedFile file(path);
  RUDDER_CHECK(file.size() >= 8, path, ": truncated safetensors file (", file.size(),
               " bytes, no header)");
  uint64_t header_len = 0;
  std::memcpy(&header_len, file.data(), 8);  // little-endian on every supported host
  RUDDER_CHECK(header_len <= file.size() - 8, path, ": truncated safetensors file: header of ",
               header_len, " bytes but the file has ", file.size());
  RUDDER_CHECK(header_len <= (100u << 20), path, ": safetensors header of ", header_len,
               " bytes is too large");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(file.data() + 8, file.data() + 8 + header_len);
  } catch (const nlohmann::json::exception& e) {
    throw core::InvalidArgument(str(path, ": malformed safetensors header: ", e.what()));
  }
  RUDDER_CHECK(header.is_object(), path, ": safetensors header is not a JSON object");
  const uint8_t* data = file.data() + 8 + header_len;
  const size_t data_size = file.size() - 8 - header_len;

  SafetensorsContent content;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      RUDDER_CHECK(entry.is_object(), path, ": __metadata__ is not an object");
      for (const auto& [k, v] : entry.items()) {
        RUDDER_CHECK(v.is_string(), path, ": __metadata__.", k, " is not a string");
        content.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    try {
      RUDDER_CHECK(entry.is_object() && entry.contains("dtype") && entry.contains("shape") &&
                       entry.contains("data_offsets"),
                   "entry needs dtype, shape and data_offsets");
      const DtypeInfo* dtype = dtype_by_name(entry.at("dtype").get<std::string>());
      RUDDER_CHECK(dtype != nullptr, "unsupported dtype ", entry.at("dtype").dump());
      std::vector<int64_t> shape = entry.at("shape").get<std::vector<int64_t>>();
      size_t numel = 1;
      for (int64_t d : shape) {
        RUDDER_CHECK(d >= 0, "negative dimension in shape ", entry.at("shape").dump());
        numel *= static_cast<size_t>(d);
      }
      const auto offsets = entry.at("data_offsets").get<std::vector<uint64_t>>();
      RUDDER_CHECK(offsets.size() == 2 && offsets[0] <= offsets[1], "bad data_offsets ",
                   entry.at("data_offsets").dump());
      RUDDER_CHECK(offsets[1] <= data_size, "data_offsets end ", offsets[1], " beyond the ",
                   data_size, " data bytes (truncated file?)");
      RUDDER_CHECK(offsets[1] - offsets[0] == numel * dtype->bytes, "holds ",
                   offsets[1] - offsets[0], " bytes but shape ", entry.at("shape").dump(), " of ",
                   dtype->name, " needs ", numel * dtype->bytes);
      at::Tensor t = torch::empty(shape, torch::TensorOptions().dtype(dtype->type));
      if (numel > 0) std::memcpy(t.data_ptr(), data + offsets[0], numel * dtype->bytes);
      content.tensors.emplace(name, std::move(t));
    } catch (const core::InvalidArgument& e) {
      throw core::InvalidArgument(str(path, ": tensor '", name, "': ", e.what()));
    } catch (const nlohmann::json::exception& e) {
      throw core::InvalidArgument(str(path, ": tensor '", name, "': malformed entry: ", e.what()));
    }
  }
  return content;
}

void save_safetensors(const std::string& path, const TensorMap& tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<at::Tensor> blobs;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    const DtypeInfo* dtype = dtype_by_type(tensor.scalar_type());
    RUDDER_CHECK(dtype != nullptr, "saving '", name, "' to ", path, ": unsupported dtype ",
                 tensor.scalar_type());
    at::Tensor cpu = tensor.detach().to(torch::kCPU).contiguous();
    const uint64_t bytes = static_cast<uint64_t>(cpu.numel()) * dtype->bytes;
    header[name] = {{"dtype", dtype->name},
                    {"shape", cpu.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    blobs.push_back(std::move(cpu));
  }
  std::string header_text = header.dump();
  header_text.append((8 - header_text.size() % 8) % 8, ' ');  // align the data to 8 bytes
  const uint64_t header_len = header_text.size();

  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  RUDDER_CHECK(fd >= 0, tmp, ": cannot create: ", std::strerror(errno));
  try {
    write_all(fd, &header_len, 8, tmp);
    write_all(fd, header_text.data(), header_text.size(), tmp);
    for (const auto& blob : blobs) {
      write_all(fd, blob.data_ptr(), static_cast<size_t>(blob.numel()) * blob.element_size(), tmp);
    }
    RUDDER_CHECK(::fsync(fd) == 0, tmp, ": fsync failed: ", std::strerror(errno));
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw core::InvalidArgument(str(path, ": rename failed: ", std::strerror(err)));
  }
}

}  // namespace rudder::models
