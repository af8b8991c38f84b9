#include <gtest/gtest.h>

#include "qatfold/archive/archive.h"
#include "qatfold/archive/zip.h"
#include "qatfold/error.h"
#include "qatfold/program/program.h"
#include "test_support.h"

namespace qatfold {
namespace {

using testing::fixturePath;
using testing::readFile;

std::unique_ptr<ZipReader> readerOf(std::string bytes) {
  return std::make_unique<ZipReader>(makeMemorySource(std::move(bytes)));
}

std::uint16_t local16(const std::string& bytes, std::uint64_t offset) {
  return static_cast<std::uint16_t>(static_cast<unsigned char>(bytes[offset]) |
                                    (static_cast<unsigned char>(bytes[offset + 1]) << 8));
}

TEST(Zip, WritesAlignedStoredRecordsThatReadBack) {
  StringSink sink;
  ZipWriter writer(sink);
  writer.addStored("root/a", "hello");
  writer.addStored("root/sub/b", std::string(1000, 'x'));
  writer.addStored("root/empty", "");
  writer.finish();
  auto reader = readerOf(sink.bytes());
  ASSERT_EQ(reader->entries().size(), 3u);
  EXPECT_EQ(reader->read(reader->find("root/a")), "hello");
  EXPECT_EQ(reader->read(reader->find("root/sub/b")), std::string(1000, 'x'));
  EXPECT_EQ(reader->read(reader->find("root/empty")), "");
  for (const ZipEntry& entry : reader->entries()) {
    EXPECT_EQ(entry.data_offset % ZipWriter::kAlignment, 0u) << entry.name;
    EXPECT_EQ(entry.method, ZipMethod::kStored);
  }
}

TEST(Zip, OutputIsDeterministic) {
  auto make = [] {
    StringSink sink;
    ZipWriter writer(sink);
    writer.addStored("r/x", "abc");
    writer.addStored("r/y", std::string(77, '\1'));
    writer.finish();
    return sink.bytes();
  };
  EXPECT_EQ(make(), make());
}

TEST(Zip, ReadsPyTorchArchivesWithDataDescriptorsAndZip64End) {
  // torch.export.save writes bit 3 (sizes after the data) and always a zip64 end record.
  const std::string bytes = readFile(fixturePath("float_cnn.pt2"));
  auto reader = readerOf(bytes);
  ASSERT_FALSE(reader->entries().empty());
  const ZipEntry& config = reader->find("float_cnn/data/weights/model_weights_config.json");
  EXPECT_EQ(local16(bytes, config.local_header_offset + 6) & 0x8, 0x8);
  EXPECT_EQ(reader->read(config).substr(0, 10), "{\"config\":");
  for (const ZipEntry& entry : reader->entries()) EXPECT_EQ(entry.data_offset % 64, 0u) << entry.name;
}

TEST(Zip, ReadsDeflatedRecordsFromGenericZipTools) {
  auto reader = readerOf(readFile(fixturePath("tied_weights_deflated.pt2")));
  auto plain = readerOf(readFile(fixturePath("tied_weights.pt2")));
  ASSERT_EQ(reader->entries().size(), plain->entries().size());
  for (const ZipEntry& entry : reader->entries()) {
    EXPECT_EQ(entry.method, ZipMethod::kDeflated) << entry.name;
    EXPECT_EQ(reader->read(entry), plain->read(plain->find(entry.name))) << entry.name;
  }
}

TEST(Zip, CopiesRecordsVerbatimIncludingCompressedOnes) {
  auto source = readerOf(readFile(fixturePath("tied_weights_deflated.pt2")));
  StringSink sink;
  ZipWriter writer(sink);
  for (const ZipEntry& entry : source->entries()) writer.copyFrom(*source, entry, entry.name);
  writer.finish();
  auto copy = readerOf(sink.bytes());
  for (const ZipEntry& entry : source->entries()) {
    const ZipEntry& copied = copy->find(entry.name);
    EXPECT_EQ(copied.method, entry.method);
    EXPECT_EQ(copied.crc32, entry.crc32);
    EXPECT_EQ(copied.compressed_size, entry.compressed_size);
    EXPECT_EQ(copy->read(copied), source->read(entry));
  }
}

TEST(Zip, ReadsZip64CentralDirectoryFields) {
  // Craft a one-record archive whose central directory moves the size and
  // offset into a zip64 extra field, as writers do past 4 GiB.
  StringSink sink;
  ZipWriter writer(sink);
  writer.addStored("r/data", "payload!");
  writer.finish();
  std::string bytes = sink.bytes();
  auto reader = readerOf(bytes);
  const ZipEntry original = reader->entries()[0];
  // Rebuild: local header + data as written, then a hand-made central directory.
  std::string head = bytes.substr(0, original.data_offset + original.compressed_size);
  std::string cd;
  auto p16 = [&cd](unsigned v) {
    cd.push_back(static_cast<char>(v & 0xFF));
    cd.push_back(static_cast<char>(v >> 8));
  };
  auto p32 = [&](std::uint32_t v) {
    p16(v & 0xFFFF);
    p16(v >> 16);
  };
  auto p64 = [&](std::uint64_t v) {
    p32(static_cast<std::uint32_t>(v));
    p32(static_cast<std::uint32_t>(v >> 32));
  };
  p32(0x02014b50);
  p16(45);
  p16(45);
  p16(0);
  p16(0);
  p16(0);
  p16(0);
  p32(original.crc32);
  p32(0xFFFFFFFF);
  p32(0xFFFFFFFF);
  p16(6);
  p16(4 + 24);
  p16(0);
  p16(0);
  p16(0);
  p32(0);
  p32(0xFFFFFFFF);
  cd += "r/data";
  p16(1);
  p16(24);
  p64(original.uncompressed_size);
  p64(original.compressed_size);
  p64(0);
  const std::uint64_t cd_offset = head.size();
  std::string eocd;
  {
    std::string saved;
    std::swap(saved, cd);
    p32(0x06054b50);
    p16(0);
    p16(0);
    p16(1);
    p16(1);
    p32(static_cast<std::uint32_t>(saved.size()));
    p32(static_cast<std::uint32_t>(cd_offset));
    p16(0);
    std::swap(saved, cd);
    eocd = saved;
  }
  auto crafted = readerOf(head + cd + eocd);
  ASSERT_EQ(crafted->entries().size(), 1u);
  EXPECT_EQ(crafted->entries()[0].compressed_size, 8u);
  EXPECT_EQ(crafted->read(crafted->entries()[0]), "payload!");
}

TEST(Zip, RejectsMalformedContainers) {
  const std::string good = readFile(fixturePath("tied_weights.pt2"));
  EXPECT_THROW(readerOf("definitely not a zip file, just some text"), Error);
  EXPECT_THROW(readerOf(good.substr(0, good.size() / 2)), Error);
  EXPECT_THROW(readerOf(""), Error);
  std::string bad_crc = good;
  auto reader = readerOf(good);
  const ZipEntry& entry = reader->find("tied_weights/data/weights/weight_0");
  bad_crc[entry.data_offset] ^= 0x5A;
  auto corrupted = readerOf(bad_crc);
  EXPECT_THROW(corrupted->read(corrupted->find(entry.name)), Error);
}

TEST(Archive, ExposesRecordsBelowTheRoot) {
  auto archive = Archive::open(fixturePath("qat_cadence_cnn.pt2"));
  EXPECT_EQ(archive->root(), "qat_cadence_cnn");
  EXPECT_TRUE(archive->has("models/model.json"));
  EXPECT_TRUE(archive->has("archive_format"));
  EXPECT_EQ(archive->read("archive_format"), "pt2");
  EXPECT_EQ(archive->tryEntry("models/nope.json"), nullptr);
  EXPECT_THROW(archive->entry("models/nope.json"), Error);
}

TEST(Archive, EditReplacesAddsAndRemovesRecordsInOrder) {
  auto archive = Archive::open(fixturePath("tied_weights.pt2"));
  ArchiveEdit edit;
  edit.put("archive_version", "0");
  edit.put("extra/note.txt", "hello");
  edit.remove("byteorder");
  auto result = Archive::fromBytes(testing::rewrite(*archive, edit));
  EXPECT_FALSE(result->has("byteorder"));
  EXPECT_EQ(result->read("extra/note.txt"), "hello");
  EXPECT_EQ(result->paths().back(), "extra/note.txt");
  EXPECT_EQ(result->paths().size(), archive->paths().size());
  for (const std::string& path : result->paths()) {
    if (path == "extra/note.txt") continue;
    EXPECT_EQ(result->read(path), archive->read(path)) << path;
  }
}

TEST(Archive, RefusesRecordsOutsideOneRoot) {
  StringSink sink;
  ZipWriter writer(sink);
  writer.addStored("a/models/model.json", "{}");
  writer.addStored("b/other", "x");
  writer.finish();
  EXPECT_THROW(Archive::fromBytes(sink.bytes()), Error);
  StringSink escape;
  ZipWriter escape_writer(escape);
  escape_writer.addStored("a/../../etc/passwd", "x");
  escape_writer.finish();
  EXPECT_THROW(Archive::fromBytes(escape.bytes()), Error);
}

}  // namespace
}  // namespace qatfold

namespace qatfold {
namespace {

// The library says which limit an input hit and leaves naming the knob to
// its front end (the CLI's options, see the malformed-input corpus).
TEST(ReadLimits, ErrorsSayWhichLimitWithoutNamingAnOption) {
  struct Case {
    ReadLimits limits;
    ExceededLimit expected;
    const char* fixture;
  };
  ReadLimits few_records, small_inflate, small_json, shallow;
  few_records.max_records = 5;
  small_inflate.max_inflated_bytes = 1000;
  small_json.max_json_bytes = 4096;
  shallow.max_json_depth = 3;
  for (const Case& c : {Case{few_records, ExceededLimit::kRecords, "float_cnn.pt2"},
                        Case{small_inflate, ExceededLimit::kInflatedBytes, "tied_weights_deflated.pt2"},
                        Case{small_json, ExceededLimit::kJsonBytes, "float_cnn.pt2"},
                        Case{shallow, ExceededLimit::kJsonDepth, "float_cnn.pt2"}}) {
    try {
      auto archive = Archive::open(testing::fixturePath(c.fixture), c.limits);
      (void)Program::load(*archive);
      ADD_FAILURE() << "no limit hit for " << static_cast<int>(c.expected);
    } catch (const Error& e) {
      EXPECT_EQ(e.limit(), c.expected) << e.what();
      EXPECT_EQ(std::string(e.what()).find("--"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("the limit of"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace qatfold
