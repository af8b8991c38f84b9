#include "qatfold/program/payload.h"

#include "qatfold/archive/archive.h"

namespace qatfold {

Storage::Storage(const Archive& archive, std::string record_path, std::uint64_t size)
    : archive_(&archive), record_path_(std::move(record_path)), size_(size) {}

Storage::Storage(std::string bytes) : size_(bytes.size()), bytes_(std::move(bytes)) {
  std::call_once(loaded_, [] {});
}

std::shared_ptr<const Storage> Storage::borrowed(const char* data, std::uint64_t size) {
  std::shared_ptr<Storage> storage(new Storage());
  storage->borrowed_ = data;
  storage->size_ = size;
  return storage;
}

std::string_view Storage::data() const {
  if (borrowed_ != nullptr) return {borrowed_, size_};
  std::call_once(loaded_, [this] {
    bytes_ = archive_->read(record_path_);
    if (bytes_.size() != size_) throw Error("record '" + record_path_ + "' changed size while reading");
  });
  return bytes_;
}

TensorView::TensorView(std::shared_ptr<const Storage> storage, program::TensorMeta meta)
    : storage_(std::move(storage)), meta_(std::move(meta)) {
  if (meta_.symbolic) throw Error("tensor has a symbolic shape");
  std::uint64_t needed = meta_.requiredStorageBytes();
  if (needed > storage_->size()) {
    throw Error("tensor " + meta_.shapeString() + " of " + program::scalarTypeName(meta_.dtype) + " needs " +
                std::to_string(needed) + " bytes but its payload has " + std::to_string(storage_->size()));
  }
}

std::vector<double> TensorView::asDoubles() const {
  using program::ScalarType;
  auto widen = [](const auto& values) { return std::vector<double>(values.begin(), values.end()); };
  switch (meta_.dtype) {
    case ScalarType::kFloat32: return widen(values<float>());
    case ScalarType::kFloat64: return values<double>();
    case ScalarType::kInt8: return widen(values<std::int8_t>());
    case ScalarType::kUInt8: return widen(values<std::uint8_t>());
    case ScalarType::kInt16: return widen(values<std::int16_t>());
    case ScalarType::kInt32: return widen(values<std::int32_t>());
    case ScalarType::kInt64: return widen(values<std::int64_t>());
    case ScalarType::kBool: {
      // Read as bytes: a stored byte other than 0/1 must not become an invalid bool.
      program::TensorMeta bytes_meta = meta_;
      bytes_meta.dtype = ScalarType::kUInt8;
      std::vector<double> out;
      for (std::uint8_t byte : TensorView(storage_, bytes_meta).values<std::uint8_t>()) out.push_back(byte != 0);
      return out;
    }
    default: throw Error("cannot read elements of dtype " + program::scalarTypeName(meta_.dtype));
  }
}

}  // namespace qatfold
