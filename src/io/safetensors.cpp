// safetensors reader (mmap + full validation before any view is handed out) and writer.
// ref: spec/model.md §1.1 (container format)
#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "base/check.h"

namespace pixtral::io {

using json = nlohmann::json;

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string TensorView::shape_string() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

namespace {

std::string shape_str(const std::vector<int64_t>& shape) {
  TensorView v;
  v.shape = shape;
  return v.shape_string();
}

std::string json_type(const json& j) { return j.type_name(); }

// Parsed header entry before it becomes a TensorView.
struct RawEntry {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;
};

// Validates one header entry's dtype, shape and data_offsets (not yet against the data section).
Status parse_entry(const std::string& name, const json& value, RawEntry* out) {
  const std::string where = "tensor '" + name + "'";
  if (!value.is_object()) return invalid_argument(where + ": expected an object, got " + json_type(value));
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    if (!value.contains(key)) return invalid_argument(where + ": missing '" + key + "'");
  }
  const json& dtype = value["dtype"];
  if (!dtype.is_string()) return invalid_argument(where + ": 'dtype' must be a string, got " + json_type(dtype));
  auto parsed = base::dtype_from_name(dtype.get_ref<const std::string&>());
  if (!parsed) return invalid_argument(where + ": unknown dtype '" + dtype.get<std::string>() + "'");
  out->dtype = *parsed;

  const json& shape = value["shape"];
  if (!shape.is_array()) return invalid_argument(where + ": 'shape' must be an array, got " + json_type(shape));
  uint64_t numel = 1;
  bool overflow = false;
  for (const json& d : shape) {
    if (!d.is_number_integer()) return invalid_argument(where + ": 'shape' entries must be integers");
    if (d.is_number_unsigned() ? d.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX) : d.get<int64_t>() < 0) {
      return invalid_argument(where + ": 'shape' has a negative or too large dimension " + d.dump());
    }
    const auto dim = d.get<int64_t>();
    out->shape.push_back(dim);
    overflow = overflow || __builtin_mul_overflow(numel, static_cast<uint64_t>(dim), &numel);
  }
  uint64_t nbytes = 0;
  overflow = overflow || __builtin_mul_overflow(numel, base::dtype_size(out->dtype), &nbytes);

  const json& offs = value["data_offsets"];
  if (!offs.is_array() || offs.size() != 2 || !offs[0].is_number_unsigned() || !offs[1].is_number_unsigned()) {
    return invalid_argument(where + ": 'data_offsets' must be two non-negative integers, got " + offs.dump());
  }
  out->begin = offs[0].get<uint64_t>();
  out->end = offs[1].get<uint64_t>();
  if (out->begin > out->end) {
    return invalid_argument(where + ": data_offsets [" + std::to_string(out->begin) + ", " +
                            std::to_string(out->end) + "] has begin > end");
  }
  if (overflow || nbytes != out->end - out->begin) {
    return invalid_argument(where + ": " + std::string(base::dtype_name(out->dtype)) + " " + shape_str(out->shape) +
                            (overflow ? " overflows 64 bits" : " needs " + std::to_string(nbytes) + " bytes") +
                            " but data_offsets span " + std::to_string(out->end - out->begin) + " bytes");
  }
  out->name = name;
  return Status::ok();
}

Status parse_metadata(const json& value, std::map<std::string, std::string>* out) {
  if (!value.is_object()) return invalid_argument("'__metadata__' must be an object, got " + json_type(value));
  for (const auto& [k, v] : value.items()) {
    if (!v.is_string()) return invalid_argument("'__metadata__' key '" + k + "' must be a string, got " + json_type(v));
    (*out)[k] = v.get<std::string>();
  }
  return Status::ok();
}

// Ranges sorted by begin must not overlap; empty ranges overlap nothing.
Status check_overlaps(std::vector<RawEntry>& entries) {
  std::vector<const RawEntry*> sorted;
  for (const RawEntry& e : entries) {
    if (e.end > e.begin) sorted.push_back(&e);
  }
  std::sort(sorted.begin(), sorted.end(), [](const RawEntry* a, const RawEntry* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < sorted.size(); ++i) {
    if (sorted[i]->begin < sorted[i - 1]->end) {
      return invalid_argument("tensor '" + sorted[i]->name + "': data range [" + std::to_string(sorted[i]->begin) +
                              ", " + std::to_string(sorted[i]->end) + ") overlaps tensor '" + sorted[i - 1]->name +
                              "' [" + std::to_string(sorted[i - 1]->begin) + ", " +
                              std::to_string(sorted[i - 1]->end) + ")");
    }
  }
  return Status::ok();
}

}  // namespace

SafetensorsFile::~SafetensorsFile() {
  if (map_ != nullptr) munmap(map_, map_size_);
}

// Parses the header JSON `text` and fills tensors_/metadata_, validating against `data_size`.
static Status parse_header(const std::string& text, const std::byte* data, uint64_t data_size,
                           std::vector<TensorView>* tensors, std::map<std::string, std::string>* metadata) {
  json header;
  std::set<std::string> seen;  // top-level keys: a repeated tensor name would silently replace the first
  std::string duplicate;
  auto on_event = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::key && depth == 1 && !seen.insert(parsed.get<std::string>()).second &&
        duplicate.empty()) {
      duplicate = parsed.get<std::string>();
    }
    return true;
  };
  try {
    header = json::parse(text, on_event);
  } catch (const json::exception& e) {
    return invalid_argument(std::string("header is not well-formed JSON: ") + e.what());
  }
  if (!duplicate.empty()) return invalid_argument("tensor '" + duplicate + "' appears twice in the header");
  if (!header.is_object()) return invalid_argument("header must be a JSON object, got " + json_type(header));
  std::vector<RawEntry> entries;
  entries.reserve(header.size());
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      PX_RETURN_IF_ERROR(parse_metadata(value, metadata));
      continue;
    }
    RawEntry entry;
    PX_RETURN_IF_ERROR(parse_entry(name, value, &entry));
    if (entry.end > data_size) {
      return invalid_argument("tensor '" + name + "': data range [" + std::to_string(entry.begin) + ", " +
                              std::to_string(entry.end) + ") ends past the data section (" +
                              std::to_string(data_size) + " bytes)");
    }
    entries.push_back(std::move(entry));
  }
  PX_RETURN_IF_ERROR(check_overlaps(entries));
  for (RawEntry& e : entries) {
    TensorView view;
    view.name = std::move(e.name);
    view.dtype = e.dtype;
    view.shape = std::move(e.shape);
    view.data = data + e.begin;
    view.nbytes = static_cast<size_t>(e.end - e.begin);
    tensors->push_back(std::move(view));
  }
  return Status::ok();
}

Result<std::unique_ptr<SafetensorsFile>> SafetensorsFile::open(const std::string& path) {
  // O_NONBLOCK: opening a FIFO must not hang; non-regular files are refused right after.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    const int err = errno;
    std::string msg = path + ": cannot open: " + std::strerror(err);
    return err == ENOENT ? not_found(msg) : io_error(msg);
  }
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return invalid_argument(path + ": not a regular file");
  }
  const auto size = static_cast<uint64_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    return invalid_argument(path + ": file is " + std::to_string(size) + " bytes, shorter than the 8-byte header length");
  }
  void* map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) return io_error(path + ": mmap failed: " + std::strerror(errno));

  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  file->map_ = map;
  file->map_size_ = size;
  const auto* bytes = static_cast<const std::byte*>(map);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<uint8_t>(bytes[i]);
  if (header_len > kMaxHeaderBytes) {
    return invalid_argument(path + ": header length " + std::to_string(header_len) + " exceeds the limit of " +
                            std::to_string(kMaxHeaderBytes) + " bytes");
  }
  if (header_len > size - 8) {
    return invalid_argument(path + ": header length " + std::to_string(header_len) +
                            " runs past the end of the file (" + std::to_string(size) + " bytes)");
  }
  const std::string text(reinterpret_cast<const char*>(bytes + 8), header_len);
  Status st_header = parse_header(text, bytes + 8 + header_len, size - 8 - header_len, &file->tensors_,
                                  &file->metadata_);
  if (!st_header.is_ok()) return st_header.with_context(path);
  for (size_t i = 0; i < file->tensors_.size(); ++i) {
    file->tensors_[i].file = path;
    file->index_[file->tensors_[i].name] = i;
  }
  return file;
}

const TensorView* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

void SafetensorsWriter::add(const std::string& name, DType dtype, std::vector<int64_t> shape, const void* data,
                            size_t nbytes) {
  PX_CHECK_MSG(name != "__metadata__", "reserved tensor name");
  uint64_t numel = 1;
  for (int64_t d : shape) {
    PX_CHECK(d >= 0);
    numel *= static_cast<uint64_t>(d);
  }
  PX_CHECK_MSG(numel * base::dtype_size(dtype) == nbytes, name.c_str());
  Entry entry{dtype, std::move(shape), std::vector<std::byte>(nbytes)};
  if (nbytes > 0) std::memcpy(entry.bytes.data(), data, nbytes);
  entries_[name] = std::move(entry);
}

void SafetensorsWriter::add_f32(const std::string& name, std::vector<int64_t> shape, const float* data) {
  int64_t numel = 1;
  for (int64_t d : shape) numel *= d;
  add(name, DType::kF32, std::move(shape), data, static_cast<size_t>(numel) * sizeof(float));
}

Status SafetensorsWriter::write(const std::string& path) const {
  json header = json::object();
  uint64_t offset = 0;
  for (const auto& [name, e] : entries_) {  // std::map: sorted names, offsets in that order
    header[name] = {{"dtype", std::string(base::dtype_name(e.dtype))},
                    {"shape", e.shape},
                    {"data_offsets", {offset, offset + e.bytes.size()}}};
    offset += e.bytes.size();
  }
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  std::string text = header.dump();
  text.append((8 - (8 + text.size()) % 8) % 8, ' ');  // data section starts 8-byte aligned
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(static_cast<uint64_t>(text.size()) >> (8 * i));

  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return io_error(path + ": cannot create: " + std::strerror(errno));
  bool ok = std::fwrite(len, 1, 8, f) == 8 && std::fwrite(text.data(), 1, text.size(), f) == text.size();
  for (const auto& [name, e] : entries_) {
    if (ok && !e.bytes.empty()) ok = std::fwrite(e.bytes.data(), 1, e.bytes.size(), f) == e.bytes.size();
  }
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) return io_error(path + ": write failed: " + std::strerror(errno));
  return Status::ok();
}

}  // namespace pixtral::io
