// Tensor payloads: the bytes behind parameters, buffers and constants.
//
// A Storage is one payload record (data/weights/weight_0, ...). Several
// FQNs may view one storage (tied weights, aliased buffers), each with its
// own TensorMeta (sizes, strides, offset). Storages are immutable: a pass
// that changes a tensor makes a new Storage, so every other view of the old
// one keeps its bytes.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "qatfold/error.h"
#include "qatfold/program/schema.h"

namespace qatfold {

class Archive;

class Storage {
 public:
  // A storage backed by archive record `record_path` (read on first use).
  Storage(const Archive& archive, std::string record_path, std::uint64_t size);
  // A new storage holding `bytes`, not yet in any archive.
  explicit Storage(std::string bytes);
  // A view of `size` bytes at `data` that someone else owns (a torch
  // tensor's storage, read in place): they must outlive every reader.
  static std::shared_ptr<const Storage> borrowed(const char* data, std::uint64_t size);

  std::uint64_t size() const { return size_; }
  // The record this storage was read from; empty for new storages.
  const std::string& recordPath() const { return record_path_; }
  // Not in any archive (made by a pass, or borrowed).
  bool isNew() const { return archive_ == nullptr; }
  // The bytes, read from the archive on first call.
  std::string_view data() const;

 private:
  Storage() = default;
  const Archive* archive_ = nullptr;
  std::string record_path_;
  std::uint64_t size_ = 0;
  const char* borrowed_ = nullptr;
  mutable std::once_flag loaded_;
  mutable std::string bytes_;
};

// C++ element type for a ScalarType, checked at run time.
template <class T>
constexpr program::ScalarType scalarTypeOf();
template <>
constexpr program::ScalarType scalarTypeOf<float>() {
  return program::ScalarType::kFloat32;
}
template <>
constexpr program::ScalarType scalarTypeOf<double>() {
  return program::ScalarType::kFloat64;
}
template <>
constexpr program::ScalarType scalarTypeOf<std::int8_t>() {
  return program::ScalarType::kInt8;
}
template <>
constexpr program::ScalarType scalarTypeOf<std::uint8_t>() {
  return program::ScalarType::kUInt8;
}
template <>
constexpr program::ScalarType scalarTypeOf<std::int16_t>() {
  return program::ScalarType::kInt16;
}
template <>
constexpr program::ScalarType scalarTypeOf<std::int32_t>() {
  return program::ScalarType::kInt32;
}
template <>
constexpr program::ScalarType scalarTypeOf<std::int64_t>() {
  return program::ScalarType::kInt64;
}

// A typed, strided view of a tensor in a storage.
class TensorView {
 public:
  // Checks that the view fits the storage; throws Error otherwise.
  TensorView(std::shared_ptr<const Storage> storage, program::TensorMeta meta);

  const program::TensorMeta& meta() const { return meta_; }
  const Storage& storage() const { return *storage_; }

  // The elements in row-major order; T must match the dtype.
  template <class T>
  std::vector<T> values() const {
    if (scalarTypeOf<T>() != meta_.dtype) {
      throw Error("tensor has dtype " + program::scalarTypeName(meta_.dtype) + ", not " +
                  program::scalarTypeName(scalarTypeOf<T>()));
    }
    std::vector<T> out(static_cast<std::size_t>(meta_.numel()));
    const char* base = storage_->data().data();
    forEachOffset(
        [&](std::size_t i, std::uint64_t element) { std::memcpy(&out[i], base + element * sizeof(T), sizeof(T)); });
    return out;
  }
  // Any numeric dtype widened to double.
  std::vector<double> asDoubles() const;

 private:
  template <class F>
  void forEachOffset(F&& visit) const {
    const std::size_t rank = meta_.sizes.size();
    const std::int64_t count = meta_.numel();
    std::vector<std::int64_t> index(rank, 0);
    std::uint64_t offset = static_cast<std::uint64_t>(meta_.storage_offset);
    for (std::int64_t i = 0; i < count; ++i) {
      visit(static_cast<std::size_t>(i), offset);
      for (std::size_t d = rank; d-- > 0;) {
        if (++index[d] < meta_.sizes[d]) {
          offset += static_cast<std::uint64_t>(meta_.strides[d]);
          break;
        }
        offset -= static_cast<std::uint64_t>(meta_.strides[d] * (meta_.sizes[d] - 1));
        index[d] = 0;
      }
    }
  }

  std::shared_ptr<const Storage> storage_;
  program::TensorMeta meta_;
};

// The little-endian bytes of `values`, for a new contiguous storage.
template <class T>
std::string encodeValues(const std::vector<T>& values) {
  std::string bytes(values.size() * sizeof(T), '\0');
  if (!values.empty()) std::memcpy(bytes.data(), values.data(), bytes.size());
  return bytes;
}

}  // namespace qatfold
