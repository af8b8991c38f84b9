#include "qatfold/archive/zip.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "qatfold/error.h"

namespace qatfold {
namespace {

constexpr std::uint32_t kLocalHeaderSignature = 0x04034b50;
constexpr std::uint32_t kCentralHeaderSignature = 0x02014b50;
constexpr std::uint32_t kEndOfCentralDirectorySignature = 0x06054b50;
constexpr std::uint32_t kZip64EndSignature = 0x06064b50;
constexpr std::uint32_t kZip64LocatorSignature = 0x07064b50;
constexpr std::uint16_t kZip64ExtraId = 0x0001;
constexpr std::uint16_t kPaddingExtraId = 0x4246;  // "FB", as PyTorch's writer
constexpr std::uint16_t kUtf8Flag = 0x0800;
constexpr std::uint16_t kEncryptedFlag = 0x0001;
constexpr std::size_t kLocalHeaderSize = 30;
constexpr std::size_t kCentralHeaderSize = 46;
constexpr std::size_t kEndOfCentralDirectorySize = 22;
constexpr std::size_t kZip64EndSize = 56;
constexpr std::size_t kZip64LocatorSize = 20;
constexpr std::uint64_t kMax32 = 0xFFFFFFFFu;
constexpr std::size_t kChunk = 1 << 20;

std::uint16_t le16(const unsigned char* p) { return static_cast<std::uint16_t>(p[0] | (p[1] << 8)); }
std::uint32_t le32(const unsigned char* p) {
  return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
         (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
}
std::uint64_t le64(const unsigned char* p) {
  return static_cast<std::uint64_t>(le32(p)) | (static_cast<std::uint64_t>(le32(p + 4)) << 32);
}

void put16(std::string& out, std::uint16_t v) {
  out.push_back(static_cast<char>(v & 0xFF));
  out.push_back(static_cast<char>(v >> 8));
}
void put32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
void put64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

std::string recordLabel(const ZipEntry& entry) { return "record '" + entry.name + "'"; }

}  // namespace

std::uint32_t crc32Of(std::string_view data) {
  uLong crc = ::crc32(0L, Z_NULL, 0);
  const auto* p = reinterpret_cast<const Bytef*>(data.data());
  std::size_t left = data.size();
  while (left > 0) {
    auto n = static_cast<uInt>(std::min<std::size_t>(left, 1u << 30));
    crc = ::crc32(crc, p, n);
    p += n;
    left -= n;
  }
  return static_cast<std::uint32_t>(crc);
}

ZipReader::ZipReader(std::unique_ptr<ByteSource> source, ReadLimits limits)
    : source_(std::move(source)), limits_(limits) {
  parseDirectory();
}

void ZipReader::parseDirectory() {
  const std::uint64_t file_size = source_->size();
  if (file_size < kEndOfCentralDirectorySize) throw Error("not a zip archive (too short)");

  // The end record sits in the last 22 + 65535 bytes (its comment may follow it).
  std::uint64_t tail_size = std::min<std::uint64_t>(file_size, kEndOfCentralDirectorySize + 0xFFFF);
  std::string tail(tail_size, '\0');
  source_->readAt(file_size - tail_size, tail.data(), tail.size());
  const auto* t = reinterpret_cast<const unsigned char*>(tail.data());
  std::int64_t eocd = -1;
  for (std::int64_t i = static_cast<std::int64_t>(tail_size - kEndOfCentralDirectorySize); i >= 0; --i) {
    if (le32(t + i) == kEndOfCentralDirectorySignature) {
      std::uint16_t comment_length = le16(t + i + 20);
      if (static_cast<std::uint64_t>(i) + kEndOfCentralDirectorySize + comment_length == tail_size) {
        eocd = i;
        break;
      }
    }
  }
  if (eocd < 0) throw Error("not a zip archive (no end of central directory record)");
  const std::uint64_t eocd_offset = file_size - tail_size + static_cast<std::uint64_t>(eocd);
  const unsigned char* e = t + eocd;
  std::uint64_t entry_count = le16(e + 10);
  std::uint64_t directory_size = le32(e + 12);
  std::uint64_t directory_offset = le32(e + 16);

  // A zip64 locator right before the end record points at the zip64 end record.
  if (eocd_offset >= kZip64LocatorSize) {
    std::array<unsigned char, kZip64LocatorSize> locator{};
    source_->readAt(eocd_offset - kZip64LocatorSize, locator.data(), locator.size());
    if (le32(locator.data()) == kZip64LocatorSignature) {
      std::uint64_t zip64_end_offset = le64(locator.data() + 8);
      if (zip64_end_offset > file_size || file_size - zip64_end_offset < kZip64EndSize) {
        throw Error("corrupt zip: zip64 end record offset " + std::to_string(zip64_end_offset) +
                    " lies outside the file");
      }
      std::array<unsigned char, kZip64EndSize> end64{};
      source_->readAt(zip64_end_offset, end64.data(), end64.size());
      if (le32(end64.data()) != kZip64EndSignature) throw Error("corrupt zip: bad zip64 end record signature");
      // Where the classic end record holds a value rather than the
      // placeholder, the two records must agree.
      auto take = [&](std::uint64_t& field, std::uint64_t placeholder, std::uint64_t value, const char* what) {
        if (field != placeholder && field != value) {
          throw Error(std::string("corrupt zip: the end record and the zip64 end record disagree on the ") + what);
        }
        field = value;
      };
      take(entry_count, 0xFFFF, le64(end64.data() + 32), "record count");
      take(directory_size, kMax32, le64(end64.data() + 40), "central directory size");
      take(directory_offset, kMax32, le64(end64.data() + 48), "central directory offset");
    }
  }
  if (directory_offset > file_size || directory_size > file_size - directory_offset) {
    throw Error("corrupt zip: central directory (offset " + std::to_string(directory_offset) + ", size " +
                std::to_string(directory_size) + ") runs past the end of the file");
  }
  if (entry_count > limits_.max_records) {
    throw Error("zip declares " + std::to_string(entry_count) + " records, more than the limit of " +
                    std::to_string(limits_.max_records),
                ExceededLimit::kRecords);
  }
  if (entry_count > directory_size / kCentralHeaderSize) {
    throw Error("corrupt zip: " + std::to_string(entry_count) + " records cannot fit a central directory of " +
                std::to_string(directory_size) + " bytes");
  }

  std::string directory(directory_size, '\0');
  source_->readAt(directory_offset, directory.data(), directory.size());
  const auto* d = reinterpret_cast<const unsigned char*>(directory.data());
  std::size_t pos = 0;
  entries_.reserve(entry_count);
  for (std::uint64_t i = 0; i < entry_count; ++i) {
    if (pos + kCentralHeaderSize > directory.size() || le32(d + pos) != kCentralHeaderSignature) {
      throw Error("corrupt zip: central directory entry " + std::to_string(i) + " is malformed");
    }
    const unsigned char* h = d + pos;
    std::uint16_t flags = le16(h + 8);
    std::uint16_t method = le16(h + 10);
    ZipEntry entry;
    entry.crc32 = le32(h + 16);
    entry.compressed_size = le32(h + 20);
    entry.uncompressed_size = le32(h + 24);
    std::uint16_t name_length = le16(h + 28);
    std::uint16_t extra_length = le16(h + 30);
    std::uint16_t comment_length = le16(h + 32);
    entry.local_header_offset = le32(h + 42);
    std::size_t variable = std::size_t{name_length} + extra_length + comment_length;
    if (pos + kCentralHeaderSize + variable > directory.size()) {
      throw Error("corrupt zip: central directory entry " + std::to_string(i) + " runs past the directory");
    }
    entry.name.assign(reinterpret_cast<const char*>(h + kCentralHeaderSize), name_length);

    // zip64 extra: present fields replace the 0xFFFFFFFF placeholders, in order.
    const unsigned char* extra = h + kCentralHeaderSize + name_length;
    std::size_t xpos = 0;
    while (xpos + 4 <= extra_length) {
      std::uint16_t id = le16(extra + xpos);
      std::uint16_t size = le16(extra + xpos + 2);
      if (xpos + 4 + size > extra_length) throw Error("corrupt zip: extra field of '" + entry.name + "' overruns");
      if (id == kZip64ExtraId) {
        const unsigned char* z = extra + xpos + 4;
        std::size_t zpos = 0;
        auto take = [&](std::uint64_t& field) {
          if (field != kMax32) return;
          if (zpos + 8 > size) throw Error("corrupt zip: zip64 field of '" + entry.name + "' is truncated");
          field = le64(z + zpos);
          zpos += 8;
        };
        take(entry.uncompressed_size);
        take(entry.compressed_size);
        take(entry.local_header_offset);
      }
      xpos += 4 + std::size_t{size};
    }
    pos += kCentralHeaderSize + variable;

    if (flags & kEncryptedFlag) throw Error("record '" + entry.name + "' is encrypted");
    if (method != 0 && method != 8) {
      throw Error("record '" + entry.name + "' uses unsupported compression method " + std::to_string(method));
    }
    entry.method = static_cast<ZipMethod>(method);
    if (entry.method == ZipMethod::kStored && entry.compressed_size != entry.uncompressed_size) {
      throw Error("corrupt zip: stored record '" + entry.name + "' has different compressed and plain sizes");
    }

    // The local header has its own name and extra lengths; data follows them.
    if (entry.local_header_offset > file_size || file_size - entry.local_header_offset < kLocalHeaderSize) {
      throw Error("corrupt zip: local header of '" + entry.name + "' lies outside the file");
    }
    std::array<unsigned char, kLocalHeaderSize> local{};
    source_->readAt(entry.local_header_offset, local.data(), local.size());
    if (le32(local.data()) != kLocalHeaderSignature) {
      throw Error("corrupt zip: bad local header signature for '" + entry.name + "'");
    }
    std::uint16_t local_name_length = le16(local.data() + 26);
    std::uint16_t local_extra_length = le16(local.data() + 28);
    if (local_name_length != name_length) {
      throw Error("corrupt zip: local header and central directory disagree on the name of '" + entry.name + "'");
    }
    entry.data_offset = entry.local_header_offset + kLocalHeaderSize + local_name_length + local_extra_length;
    if (entry.data_offset > file_size || entry.compressed_size > file_size - entry.data_offset) {
      throw Error("corrupt zip: record '" + entry.name + "' declares " + std::to_string(entry.compressed_size) +
                  " bytes, which run past the end of the file");
    }
    std::string local_name(local_name_length, '\0');
    source_->readAt(entry.local_header_offset + kLocalHeaderSize, local_name.data(), local_name.size());
    if (local_name != entry.name) {
      throw Error("corrupt zip: local header and central directory disagree on the name of '" + entry.name + "'");
    }
    if (entry.method == ZipMethod::kDeflated) {
      if (entry.uncompressed_size > limits_.max_inflated_bytes) {
        throw Error("record '" + entry.name + "' inflates to " + std::to_string(entry.uncompressed_size) +
                        " bytes, more than the limit of " + std::to_string(limits_.max_inflated_bytes),
                    ExceededLimit::kInflatedBytes);
      }
      if (entry.uncompressed_size > 1024 &&
          entry.uncompressed_size / std::max<std::uint64_t>(entry.compressed_size, 1) > limits_.max_compression_ratio) {
        throw Error("record '" + entry.name + "' inflates " +
                        std::to_string(entry.uncompressed_size / std::max<std::uint64_t>(entry.compressed_size, 1)) +
                        " times its compressed size, more than the limit of " +
                        std::to_string(limits_.max_compression_ratio) + " (a zip bomb?)",
                    ExceededLimit::kCompressionRatio);
      }
    }
    if (!index_.emplace(entry.name, entries_.size()).second) {
      throw Error("corrupt zip: duplicate record name '" + entry.name + "'");
    }
    entries_.push_back(std::move(entry));
  }
}

const ZipEntry* ZipReader::tryFind(std::string_view name) const {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &entries_[it->second];
}

const ZipEntry& ZipReader::find(std::string_view name) const {
  const ZipEntry* entry = tryFind(name);
  if (entry == nullptr) throw Error("archive has no record '" + std::string(name) + "'");
  return *entry;
}

std::string ZipReader::read(const ZipEntry& entry, std::size_t spare) const {
  std::string raw;
  if (entry.method == ZipMethod::kStored) raw.reserve(entry.compressed_size + spare);
  raw.resize(entry.compressed_size);
  source_->readAt(entry.data_offset, raw.data(), raw.size());
  std::string data;
  if (entry.method == ZipMethod::kStored) {
    data = std::move(raw);
  } else {
    data.reserve(entry.uncompressed_size + spare);
    data.assign(entry.uncompressed_size, '\0');
    z_stream stream{};
    if (inflateInit2(&stream, -MAX_WBITS) != Z_OK) throw Error("zlib inflateInit failed");
    // zlib counts in 32 bits; feed and drain it in slices so any size works.
    constexpr std::uint64_t kSlice = 1u << 30;
    std::uint64_t in_pos = 0;
    std::uint64_t out_pos = 0;
    int rc = Z_OK;
    while (true) {
      if (stream.avail_in == 0 && in_pos < raw.size()) {
        stream.next_in = reinterpret_cast<Bytef*>(raw.data() + in_pos);
        stream.avail_in = static_cast<uInt>(std::min<std::uint64_t>(kSlice, raw.size() - in_pos));
        in_pos += stream.avail_in;
      }
      if (stream.avail_out == 0 && out_pos < data.size()) {
        stream.next_out = reinterpret_cast<Bytef*>(data.data() + out_pos);
        stream.avail_out = static_cast<uInt>(std::min<std::uint64_t>(kSlice, data.size() - out_pos));
        out_pos += stream.avail_out;
      }
      rc = inflate(&stream, Z_NO_FLUSH);
      if (rc == Z_OK) continue;  // progress; go on
      if (rc == Z_BUF_ERROR) {
        const bool more_in = stream.avail_in == 0 && in_pos < raw.size();
        const bool more_out = stream.avail_out == 0 && out_pos < data.size();
        if (more_in || more_out) continue;
      }
      break;  // Z_STREAM_END, corrupt data, or out of input or room
    }
    const std::uint64_t produced = stream.total_out;
    const std::string why = stream.msg != nullptr ? std::string(" (") + stream.msg + ")" : "";
    inflateEnd(&stream);
    if (rc != Z_STREAM_END || produced != entry.uncompressed_size) {
      throw Error("corrupt zip: " + recordLabel(entry) + " does not inflate to its declared size" + why);
    }
  }
  if (crc32Of(data) != entry.crc32) throw Error("corrupt zip: CRC mismatch in " + recordLabel(entry));
  return data;
}

void ZipReader::streamRaw(const ZipEntry& entry, const std::function<void(const char*, std::size_t)>& sink) const {
  std::string buffer(std::min<std::uint64_t>(kChunk, entry.compressed_size), '\0');
  uLong crc = ::crc32(0L, Z_NULL, 0);
  std::uint64_t done = 0;
  while (done < entry.compressed_size) {
    auto n = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), entry.compressed_size - done));
    source_->readAt(entry.data_offset + done, buffer.data(), n);
    if (entry.method == ZipMethod::kStored) {
      crc = ::crc32(crc, reinterpret_cast<const Bytef*>(buffer.data()), static_cast<uInt>(n));
    }
    sink(buffer.data(), n);
    done += n;
  }
  if (entry.method == ZipMethod::kStored && static_cast<std::uint32_t>(crc) != entry.crc32) {
    throw Error("corrupt zip: CRC mismatch in " + recordLabel(entry));
  }
}

void ZipWriter::writeLocalHeader(const Written& record) {
  const bool zip64 = record.compressed_size >= kMax32 || record.uncompressed_size >= kMax32;
  std::string header;
  put32(header, kLocalHeaderSignature);
  put16(header, zip64 ? 45 : 20);  // version needed
  put16(header, kUtf8Flag);
  put16(header, record.method);
  put16(header, 0);     // time: fixed, for deterministic output
  put16(header, 0x21);  // date: 1980-01-01
  put32(header, record.crc32);
  put32(header, zip64 ? static_cast<std::uint32_t>(kMax32) : static_cast<std::uint32_t>(record.compressed_size));
  put32(header, zip64 ? static_cast<std::uint32_t>(kMax32) : static_cast<std::uint32_t>(record.uncompressed_size));
  put16(header, static_cast<std::uint16_t>(record.name.size()));
  std::string extra;
  if (zip64) {
    put16(extra, kZip64ExtraId);
    put16(extra, 16);
    put64(extra, record.uncompressed_size);
    put64(extra, record.compressed_size);
  }
  // Pad with an "FB" extra field so the data starts on a 64-byte boundary.
  std::uint64_t data_start = sink_.position() + kLocalHeaderSize + record.name.size() + extra.size() + 4;
  std::uint64_t padding = (kAlignment - data_start % kAlignment) % kAlignment;
  put16(extra, kPaddingExtraId);
  put16(extra, static_cast<std::uint16_t>(padding));
  extra.append(padding, 'Z');
  put16(header, static_cast<std::uint16_t>(extra.size()));
  header += record.name;
  header += extra;
  sink_.write(header);
}

void ZipWriter::addStored(std::string_view name, std::string_view data) {
  addProduced(name, [data](const std::function<void(std::string_view)>& emit) { emit(data); });
}

void ZipWriter::addProduced(std::string_view name,
                            const std::function<void(const std::function<void(std::string_view)>&)>& producer) {
  if (finished_) throw Error("zip writer already finished");
  std::uint64_t size = 0;
  uLong crc = crc32(0L, Z_NULL, 0);
  auto measure = [&](std::string_view piece) {
    size += piece.size();
    crc = crc32_z(crc, reinterpret_cast<const Bytef*>(piece.data()), piece.size());
  };
  producer(measure);
  Written record{std::string(name), 0, static_cast<std::uint32_t>(crc), size, size, sink_.position()};
  writeLocalHeader(record);
  const std::uint64_t expected_size = size;
  const uLong expected_crc = crc;
  size = 0;
  crc = crc32(0L, Z_NULL, 0);
  producer([&](std::string_view piece) {
    measure(piece);
    if (size > expected_size) throw Error("record " + record.name + " grew while it was written");
    sink_.write(piece);
  });
  if (size != expected_size || crc != expected_crc)
    throw Error("record " + record.name + " changed while it was written");
  written_.push_back(std::move(record));
}

void ZipWriter::copyFrom(const ZipReader& reader, const ZipEntry& entry, std::string_view name) {
  if (finished_) throw Error("zip writer already finished");
  Written record{std::string(name),
                 static_cast<std::uint16_t>(entry.method),
                 entry.crc32,
                 entry.compressed_size,
                 entry.uncompressed_size,
                 sink_.position()};
  writeLocalHeader(record);
  // The CRC comes from the input's directory; recomputing it means reading
  // every byte, which only --verify-crc asks for (see ReadLimits).
  if (reader.limits().verify_copied_crc ||
      !sink_.copyRange(reader.source(), entry.data_offset, entry.compressed_size)) {
    reader.streamRaw(entry, [this](const char* data, std::size_t count) { sink_.write(data, count); });
  }
  written_.push_back(std::move(record));
}

void ZipWriter::finish() {
  if (finished_) return;
  finished_ = true;
  const std::uint64_t directory_offset = sink_.position();
  std::string directory;
  for (const Written& record : written_) {
    std::string zip64;
    auto field32 = [&](std::uint64_t value) -> std::uint32_t {
      if (value < kMax32) return static_cast<std::uint32_t>(value);
      put64(zip64, value);
      return static_cast<std::uint32_t>(kMax32);
    };
    // zip64 fields must appear in the order: plain size, compressed size, offset.
    std::uint32_t uncompressed = field32(record.uncompressed_size);
    std::uint32_t compressed = field32(record.compressed_size);
    std::uint32_t offset = field32(record.local_header_offset);
    std::string extra;
    if (!zip64.empty()) {
      put16(extra, kZip64ExtraId);
      put16(extra, static_cast<std::uint16_t>(zip64.size()));
      extra += zip64;
    }
    put32(directory, kCentralHeaderSignature);
    put16(directory, 0x031e);  // made by: UNIX, spec 3.0 (as PyTorch)
    put16(directory, zip64.empty() ? 20 : 45);
    put16(directory, kUtf8Flag);
    put16(directory, record.method);
    put16(directory, 0);
    put16(directory, 0x21);
    put32(directory, record.crc32);
    put32(directory, compressed);
    put32(directory, uncompressed);
    put16(directory, static_cast<std::uint16_t>(record.name.size()));
    put16(directory, static_cast<std::uint16_t>(extra.size()));
    put16(directory, 0);               // comment
    put16(directory, 0);               // disk
    put16(directory, 0);               // internal attributes
    put32(directory, 0100644u << 16);  // external attributes: a regular file, rw-r--r--
    put32(directory, offset);
    directory += record.name;
    directory += extra;
  }
  sink_.write(directory);
  const std::uint64_t zip64_end_offset = sink_.position();
  const std::uint64_t count = written_.size();
  std::string end;
  // Always a zip64 end record and locator, as PyTorch's writer does.
  put32(end, kZip64EndSignature);
  put64(end, kZip64EndSize - 12);
  put16(end, 0x031e);
  put16(end, 45);
  put32(end, 0);
  put32(end, 0);
  put64(end, count);
  put64(end, count);
  put64(end, directory.size());
  put64(end, directory_offset);
  put32(end, kZip64LocatorSignature);
  put32(end, 0);
  put64(end, zip64_end_offset);
  put32(end, 1);
  put32(end, kEndOfCentralDirectorySignature);
  put16(end, 0);
  put16(end, 0);
  put16(end, static_cast<std::uint16_t>(std::min<std::uint64_t>(count, 0xFFFF)));
  put16(end, static_cast<std::uint16_t>(std::min<std::uint64_t>(count, 0xFFFF)));
  put32(end, static_cast<std::uint32_t>(std::min<std::uint64_t>(directory.size(), kMax32)));
  put32(end, static_cast<std::uint32_t>(std::min<std::uint64_t>(directory_offset, kMax32)));
  put16(end, 0);
  sink_.write(end);
}

}  // namespace qatfold
