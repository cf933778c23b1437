// safetensors files: a validated, zero-copy (mmap) reader and a writer.
//
// File layout: u64 little-endian header length N, N bytes of JSON
//   {"name": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}}
// then the data section; offsets are relative to the start of the data section.
// The reader validates everything before any tensor is handed out: header length within the
// file and below kMaxHeaderBytes, well-formed JSON of that shape, known dtype, dtype size x
// product(shape) == end - begin, every range inside the data section, no two ranges overlapping.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/dtype.h"
#include "pixtral/status.h"

namespace pixtral::io {

using base::DType;

// A view of one tensor inside a mapped file. `data` stays valid while the owning file lives.
struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;  // row-major, outermost first
  const std::byte* data = nullptr;
  size_t nbytes = 0;
  std::string file;  // path of the file it came from, for error messages

  int64_t numel() const;
  std::string shape_string() const;  // "[4096, 5120]"
};

class SafetensorsFile {
 public:
  static constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // 100 MiB

  // Maps and validates `path`. Errors name the file and the offending tensor/key.
  static Result<std::unique_ptr<SafetensorsFile>> open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  // Tensors in header order (sorted by name, as the JSON object is read).
  const std::vector<TensorView>& tensors() const { return tensors_; }
  const TensorView* find(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  SafetensorsFile() = default;
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  std::vector<TensorView> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// Collects tensors, then writes one file (header keys sorted, data 8-byte aligned as safetensors
// writers do). The bytes are copied at add().
class SafetensorsWriter {
 public:
  void add(const std::string& name, DType dtype, std::vector<int64_t> shape, const void* data, size_t nbytes);
  void add_f32(const std::string& name, std::vector<int64_t> shape, const float* data);
  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }
  Status write(const std::string& path) const;

 private:
  struct Entry {
    DType dtype;
    std::vector<int64_t> shape;
    std::vector<std::byte> bytes;
  };
  std::map<std::string, Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace pixtral::io
