// Shared helpers of the fuzz targets: the fixture archive the JSON targets
// splice their input into, and the one rule every target checks: malformed
// input may only ever surface as qatfold::Error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>

#include "qatfold/archive/archive.h"
#include "qatfold/archive/byte_io.h"

namespace qatfold::fuzz {

inline std::string readFixture(const char* name) {
  std::ifstream in(std::string(QATFOLD_FIXTURES) + "/" + name, std::ios::binary);
  if (!in) __builtin_trap();
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// `base` with record `path` (below the root) replaced by `bytes`.
inline std::string withRecord(const Archive& base, const std::string& path, std::string_view bytes) {
  ArchiveEdit edit;
  edit.put(path, std::string(bytes));
  StringSink sink;
  writeArchive(base, edit, sink);
  return std::move(sink.bytes());
}

inline std::string_view asView(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

}  // namespace qatfold::fuzz
