// The zip container, as PyTorch's writer and generic zip tools produce it.
//
// Hand-written because no packaged library offers all of what PT2 archives
// need together: 64-byte aligned stored records (ExecuTorch memory-maps
// them), verbatim streamed copies of untouched records, byte-deterministic
// output, zip64, and strict bounds checks on hostile input. Compression and
// CRC-32 come from zlib.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "qatfold/archive/byte_io.h"
#include "qatfold/archive/limits.h"

namespace qatfold {

// Compression methods we read.
enum class ZipMethod : std::uint16_t { kStored = 0, kDeflated = 8 };

// One record of the central directory, with its data located.
struct ZipEntry {
  std::string name;
  ZipMethod method = ZipMethod::kStored;
  std::uint32_t crc32 = 0;
  std::uint64_t compressed_size = 0;
  std::uint64_t uncompressed_size = 0;
  std::uint64_t local_header_offset = 0;
  std::uint64_t data_offset = 0;  // first byte of the (compressed) data
};

// Reads a zip archive lazily: open() parses only the directories.
class ZipReader {
 public:
  // Parses the directories of `source`; throws Error on malformed archives.
  explicit ZipReader(std::unique_ptr<ByteSource> source, ReadLimits limits = {});

  const std::vector<ZipEntry>& entries() const { return entries_; }
  // The entry named `name`, or nullptr.
  const ZipEntry* tryFind(std::string_view name) const;
  // The entry named `name`; throws Error if absent.
  const ZipEntry& find(std::string_view name) const;

  // Reads and (if needed) inflates a whole record, checking its CRC. The
  // string has room for `spare` more bytes, so a reader that needs padding
  // (simdjson) grows it without a copy.
  std::string read(const ZipEntry& entry, std::size_t spare = 0) const;
  // Streams the record's raw (possibly compressed) bytes in chunks, verifying
  // the CRC of stored records on the way.
  void streamRaw(const ZipEntry& entry, const std::function<void(const char*, std::size_t)>& sink) const;

  const ByteSource& source() const { return *source_; }
  const ReadLimits& limits() const { return limits_; }

 private:
  void parseDirectory();

  std::unique_ptr<ByteSource> source_;
  ReadLimits limits_;
  std::vector<ZipEntry> entries_;
  std::unordered_map<std::string, std::size_t> index_;
};

// Writes a zip archive: stored records aligned to 64 bytes, zip64 where
// needed, no timestamps, so the same calls give the same bytes.
class ZipWriter {
 public:
  static constexpr std::uint64_t kAlignment = 64;

  explicit ZipWriter(ByteSink& sink) : sink_(sink) {}

  // Adds a stored record holding `data`.
  void addStored(std::string_view name, std::string_view data);
  // Adds a stored record whose bytes `producer` writes, without holding
  // them: a first run measures the size and CRC the local header needs, a
  // second writes the bytes. Throws Error if the runs differ.
  void addProduced(std::string_view name,
                   const std::function<void(const std::function<void(std::string_view)>&)>& producer);
  // Copies `entry` from `reader` verbatim (same method and bytes), streamed.
  void copyFrom(const ZipReader& reader, const ZipEntry& entry, std::string_view name);
  // Writes the central directory; no record can be added after it.
  void finish();

 private:
  struct Written {
    std::string name;
    std::uint16_t method;
    std::uint32_t crc32;
    std::uint64_t compressed_size;
    std::uint64_t uncompressed_size;
    std::uint64_t local_header_offset;
  };
  void writeLocalHeader(const Written& record);

  ByteSink& sink_;
  std::vector<Written> written_;
  bool finished_ = false;
};

// CRC-32 of `data` (zlib's).
std::uint32_t crc32Of(std::string_view data);

}  // namespace qatfold
