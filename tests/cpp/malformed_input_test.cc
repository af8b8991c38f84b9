// The malformed-input corpus: every corruption of a real PT2 archive we could
// think of, each run through `qatfold fold IN -o OUT` as a user would. Every
// case must give exit code 1 and one line "qatfold: error: IN: ..." naming the
// problem, write no output (and leave no temporary file), and leave the
// input's bytes as they were.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "qatfold/archive/archive.h"
#include "qatfold/program/json.h"
#include "test_support.h"

namespace qatfold {
namespace {

using testing::fixturePath;
using testing::readFile;
using testing::writeFile;

constexpr const char* kStored = "qat_cadence_cnn.pt2";  // stored records, as torch writes them
constexpr const char* kDeflated = "tied_weights_deflated.pt2";

// ---- byte surgery on a zip -------------------------------------------------

std::uint32_t le32(const std::string& b, std::size_t at) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b[at + i]);
  return v;
}
std::uint16_t le16(const std::string& b, std::size_t at) {
  return static_cast<std::uint16_t>(static_cast<unsigned char>(b[at]) | static_cast<unsigned char>(b[at + 1]) << 8);
}
void put(std::string& b, std::size_t at, std::uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) b[at + i] = static_cast<char>((value >> (8 * i)) & 0xFF);
}

// Where the structures of a zip sit, found by walking its central directory.
struct Layout {
  std::size_t eocd = 0;
  std::size_t end64 = 0;  // zip64 end record (torch always writes one), or 0
  std::size_t directory = 0;
  std::vector<std::size_t> central;  // each central header
  std::vector<std::size_t> local;    // each local header
  std::vector<std::string> names;

  explicit Layout(const std::string& b) {
    eocd = b.rfind(std::string("PK\x05\x06", 4));
    directory = le32(b, eocd + 16);
    if (eocd >= 20 && le32(b, eocd - 20) == 0x07064b50) end64 = le32(b, eocd - 12);
    std::size_t pos = directory;
    for (std::uint16_t i = 0, n = le16(b, eocd + 10); i < n; ++i) {
      central.push_back(pos);
      local.push_back(le32(b, pos + 42));
      names.push_back(b.substr(pos + 46, le16(b, pos + 28)));
      pos += 46 + le16(b, pos + 28) + le16(b, pos + 30) + le16(b, pos + 32);
    }
  }
  // Index of the record whose name ends with `suffix`.
  std::size_t find(const std::string& suffix) const {
    for (std::size_t i = 0; i < names.size(); ++i) {
      if (names[i].size() >= suffix.size() &&
          names[i].compare(names[i].size() - suffix.size(), suffix.size(), suffix) == 0) {
        return i;
      }
    }
    ADD_FAILURE() << "no record " << suffix;
    return 0;
  }
  std::size_t dataOffset(const std::string& b, std::size_t i) const {
    return local[i] + 30 + le16(b, local[i] + 26) + le16(b, local[i] + 28);
  }
};

// The fixture's bytes with `edit(bytes, layout)` applied.
std::string patched(const char* fixture, const std::function<void(std::string&, const Layout&)>& edit) {
  std::string bytes = readFile(fixturePath(fixture));
  Layout layout(bytes);
  edit(bytes, layout);
  return bytes;
}

std::string truncatedAt(const char* fixture, const std::function<std::size_t(const Layout&)>& where) {
  std::string bytes = readFile(fixturePath(fixture));
  return bytes.substr(0, where(Layout(bytes)));
}

// Renames the end `suffix` of a record's name to `replacement` (same
// length) in both of its headers.
std::string renamed(const char* fixture, const std::string& suffix, const std::string& replacement) {
  return patched(fixture, [&](std::string& b, const Layout& z) {
    std::size_t i = z.find(suffix);
    EXPECT_EQ(replacement.size(), suffix.size());
    std::size_t at = z.names[i].size() - suffix.size();
    b.replace(z.central[i] + 46 + at, replacement.size(), replacement);
    b.replace(z.local[i] + 30 + at, replacement.size(), replacement);
  });
}

// The stored fixture with a zip64 end-of-directory locator put right before
// its end record, pointing at `end64_offset`.
std::string withZip64Locator(std::uint64_t end64_offset) {
  std::string bytes = readFile(fixturePath(kStored));
  Layout z(bytes);
  std::string locator(20, '\0');
  put(locator, 0, 0x07064b50, 4);
  put(locator, 8, end64_offset, 8);
  put(locator, 16, 1, 4);
  bytes.insert(z.eocd, locator);
  return bytes;
}

// ---- JSON surgery ------------------------------------------------------------

std::string withModel(const std::function<void(Json&)>& edit) { return testing::withModelJson(kStored, edit); }
std::string withConfig(const std::function<void(Json&)>& edit) { return testing::withWeightsConfig(kStored, edit); }

Json& graphOf(Json& model) { return model["graph_module"]["graph"]; }
Json& firstWeight(Json& config) { return config["config"].begin().value(); }

// The fixture with record `path` holding `bytes` verbatim (not JSON-checked).
std::string withRecordText(const std::string& path, const std::string& bytes) {
  auto archive = Archive::open(fixturePath(kStored));
  ArchiveEdit edit;
  edit.put(path, bytes);
  return testing::rewrite(*archive, edit);
}

std::string withoutRecord(const std::string& path) {
  auto archive = Archive::open(fixturePath(kStored));
  ArchiveEdit edit;
  edit.remove(path);
  return testing::rewrite(*archive, edit);
}

// ---- the corpus ----------------------------------------------------------------

struct Corruption {
  std::string name;
  std::function<std::string()> make;
  std::string expected;  // part of the one-line message
  std::string extra_args = "";
};

std::vector<Corruption> corpus() {
  const std::string model = "models/model.json";
  return {
      // Truncation at every structural boundary.
      {"EmptyFile", [] { return std::string(); }, "not a zip archive (too short)"},
      {"TruncatedInFirstSignature", [] { return truncatedAt(kStored, [](const Layout&) { return 4; }); },
       "not a zip archive"},
      {"TruncatedAfterFirstLocalHeader", [] { return truncatedAt(kStored, [](const Layout&) { return 30; }); },
       "no end of central directory"},
      {"TruncatedAfterFirstRecord", [] { return truncatedAt(kStored, [](const Layout& z) { return z.local[1]; }); },
       "no end of central directory"},
      {"TruncatedBeforeCentralDirectory",
       [] { return truncatedAt(kStored, [](const Layout& z) { return z.directory; }); }, "no end of central directory"},
      {"TruncatedInsideCentralDirectory",
       [] { return truncatedAt(kStored, [](const Layout& z) { return z.central[3] + 20; }); },
       "no end of central directory"},
      {"TruncatedBeforeEndRecord", [] { return truncatedAt(kStored, [](const Layout& z) { return z.eocd; }); },
       "no end of central directory"},
      {"TruncatedInsideEndRecord", [] { return truncatedAt(kStored, [](const Layout& z) { return z.eocd + 21; }); },
       "no end of central directory"},
      {"NotAZipAtAll", [] { return std::string(4096, 'x'); }, "no end of central directory"},
      // End record and central directory lying.
      {"DirectoryOffsetPastEnd",
       [] {
         return patched(kStored, [](std::string& b, const Layout& z) {
           put(b, z.eocd + 16, b.size(), 4);
           put(b, z.end64 + 48, b.size(), 8);
         });
       },
       "runs past the end of the file"},
      {"DirectorySizePastEnd",
       [] {
         return patched(kStored, [](std::string& b, const Layout& z) {
           put(b, z.eocd + 12, 0x7FFFFFFF, 4);
           put(b, z.end64 + 40, 0x7FFFFFFF, 8);
         });
       },
       "runs past the end of the file"},
      {"MoreRecordsThanDirectoryHolds",
       [] {
         return patched(kStored, [](std::string& b, const Layout& z) {
           put(b, z.eocd + 8, 0xFFF0, 2);
           put(b, z.eocd + 10, 0xFFF0, 2);
           put(b, z.end64 + 24, 0xFFF0, 8);
           put(b, z.end64 + 32, 0xFFF0, 8);
         });
       },
       "records cannot fit a central directory"},
      {"EndRecordsDisagree",
       [] {
         return patched(kStored,
                        [](std::string& b, const Layout& z) { put(b, z.eocd + 16, le32(b, z.eocd + 16) - 1, 4); });
       },
       "disagree on the central directory offset"},
      {"Zip64RecordCountLies",
       [] {
         return patched(kStored, [](std::string& b, const Layout& z) {
           put(b, z.eocd + 10, 0xFFFF, 2);
           put(b, z.end64 + 32, 1ull << 40, 8);
         });
       },
       "more than the limit of 1000000"},
      {"CentralHeaderSignatureWrong",
       [] { return patched(kStored, [](std::string& b, const Layout& z) { b[z.central[2]] = 'X'; }); },
       "central directory entry 2 is malformed"},
      {"CentralNameRunsPastDirectory",
       [] {
         return patched(kStored, [](std::string& b, const Layout& z) { put(b, z.central.back() + 28, 0xFFFF, 2); });
       },
       "runs past the directory"},
      {"LocalHeaderOffsetOutsideFile",
       [] {
         return patched(kStored, [](std::string& b, const Layout& z) { put(b, z.central[0] + 42, 0xFFFFFF00, 4); });
       },
       "local header of"},
      {"LocalHeaderSignatureWrong",
       [] { return patched(kStored, [](std::string& b, const Layout& z) { b[z.local[1]] = 'X'; }); },
       "bad local header signature"},
      {"LocalNameLengthDisagrees",
       [] {
         return patched(kStored, [](std::string& b, const Layout& z) {
           put(b, z.local[0] + 26, le16(b, z.local[0] + 26) + 1, 2);
         });
       },
       "disagree on the name"},
      {"LocalNameDisagrees",
       [] { return patched(kStored, [](std::string& b, const Layout& z) { b[z.local[0] + 31] ^= 0x20; }); },
       "disagree on the name"},
      {"CrcWrongOnModelJson",
       [model] {
         return patched(kStored, [&](std::string& b, const Layout& z) { b[z.central[z.find(model)] + 16] ^= 1; });
       },
       "CRC mismatch in record"},
      {"CrcWrongOnCopiedRecord",
       [] {
         return patched(kStored, [](std::string& b, const Layout& z) { b[z.central[z.find("/byteorder")] + 16] ^= 1; });
       },
       "CRC mismatch in record", "--verify-crc"},
      {"WeightBytesFlipped",
       [] { return patched(kStored, [](std::string& b, const Layout& z) { b[z.dataOffset(b, 0) + 5] ^= 0x40; }); },
       "CRC mismatch in record", "--verify-crc"},
      {"RecordSizePastEnd",
       [model] {
         return patched(kStored, [&](std::string& b, const Layout& z) {
           std::size_t c = z.central[z.find(model)];
           put(b, c + 20, 0x7FFFFFF0, 4);
           put(b, c + 24, 0x7FFFFFF0, 4);
         });
       },
       "run past the end of the file"},
      {"StoredSizesDisagree",
       [] {
         return patched(kStored, [](std::string& b, const Layout& z) {
           put(b, z.central[0] + 24, le32(b, z.central[0] + 24) + 1, 4);
         });
       },
       "different compressed and plain sizes"},
      {"UnknownCompressionMethod",
       [] { return patched(kStored, [](std::string& b, const Layout& z) { put(b, z.central[0] + 10, 12, 2); }); },
       "unsupported compression method 12"},
      {"EncryptedRecord",
       [] { return patched(kStored, [](std::string& b, const Layout& z) { b[z.central[0] + 8] |= 1; }); },
       "is encrypted"},
      {"Zip64LocatorOutsideFile", [] { return withZip64Locator(1ull << 40); },
       "zip64 end record offset 1099511627776 lies outside the file"},
      {"Zip64EndSignatureWrong", [] { return withZip64Locator(0); }, "bad zip64 end record signature"},
      {"Zip64SizesWithoutExtraField",
       [] {
         return patched(kDeflated, [](std::string& b, const Layout& z) {
           put(b, z.central[0] + 20, 0xFFFFFFFF, 4);
           put(b, z.central[0] + 24, 0xFFFFFFFF, 4);
         });
       },
       "declares 4294967295 bytes"},
      // Record names.
      {"DuplicateRecordName", [] { return renamed(kStored, "weights/weight_1", "weights/weight_2"); },
       "duplicate record name"},
      {"DirectoryEntry", [] { return renamed(kStored, "/byteorder", "/byteorde/"); }, "is a directory entry"},
      {"RecordOutsideRoot", [] { return renamed(kStored, "qat_cadence_cnn/byteorder", "qat_cadence_cnX/byteorder"); },
       "outside the archive's root folder"},
      {"ParentDirectoryInName", [] { return renamed(kStored, "/archive_version", "/../hive_version"); },
       "not a plain relative path"},
      {"EmptyPathComponent", [] { return renamed(kStored, "/archive_version", "//rchive_version"); },
       "not a plain relative path"},
      {"ControlCharacterInName",
       [] { return renamed(kStored, "/archive_version", std::string("/archive\x01version")); }, "control character"},
      // Deflated records lying about their sizes, corrupt streams, bombs.
      {"DeflateStreamCorrupt",
       [model] {
         return patched(kDeflated, [&](std::string& b, const Layout& z) {
           std::size_t i = z.find(model);
           b.replace(z.dataOffset(b, i), 8, std::string(8, '\xFF'));
         });
       },
       "does not inflate to its declared size"},
      {"DeflateDeclaredTooSmall",
       [model] {
         return patched(kDeflated, [&](std::string& b, const Layout& z) {
           std::size_t c = z.central[z.find(model)];
           put(b, c + 24, le32(b, c + 24) - 100, 4);
         });
       },
       "does not inflate to its declared size"},
      {"DeflateDeclaredTooLarge",
       [model] {
         return patched(kDeflated, [&](std::string& b, const Layout& z) {
           std::size_t c = z.central[z.find(model)];
           put(b, c + 24, le32(b, c + 24) + 100, 4);
         });
       },
       "does not inflate to its declared size"},
      {"ZipBombRatio",
       [model] {
         return patched(kDeflated, [&](std::string& b, const Layout& z) {
           std::size_t c = z.central[z.find(model)];
           put(b, c + 24, le32(b, c + 20) * 5000ull, 4);
         });
       },
       "(a zip bomb?) (raise it with --max-compression-ratio)"},
      // Limits, each with the option that raises it.
      {"InflatedSizeOverLimit", [] { return readFile(fixturePath(kDeflated)); },
       "more than the limit of 1000 (raise it with --max-inflated-size)", "--max-inflated-size 1000"},
      {"RecordCountOverLimit", [] { return readFile(fixturePath(kStored)); },
       "more than the limit of 5 (raise it with --max-records)", "--max-records 5"},
      {"JsonSizeOverLimit", [] { return readFile(fixturePath(kStored)); },
       "models/model.json: JSON record of 72998 bytes, more than the limit of 4096 (raise it with --max-json-size)",
       "--max-json-size 4096"},
      {"JsonTooDeep", [model] { return withRecordText(model, std::string(600, '[') + std::string(600, ']')); },
       "nests deeper than the limit of 512 levels (raise it with --max-json-depth)"},
      // JSON type confusion at every level.
      {"ModelJsonTruncated",
       [model] {
         auto text = Archive::open(fixturePath(kStored))->read(model);
         return withRecordText(model, text.substr(0, text.size() / 2));
       },
       "models/model.json: malformed JSON"},
      {"ModelJsonNotUtf8Json", [model] { return withRecordText(model, "\xff\xfe{}"); },
       "models/model.json: malformed JSON"},
      {"ModelIsList", [model] { return withRecordText(model, "[]"); }, "models/model.json"},
      {"GraphModuleMissing", [] { return withModel([](Json& m) { m.erase("graph_module"); }); }, "graph_module"},
      {"GraphIsString", [] { return withModel([](Json& m) { m["graph_module"]["graph"] = "graph"; }); }, "graph"},
      {"NodesIsObject", [] { return withModel([](Json& m) { graphOf(m)["nodes"] = Json::object(); }); }, "nodes"},
      {"NodeTargetIsInt", [] { return withModel([](Json& m) { graphOf(m)["nodes"][0]["target"] = 5; }); }, "target"},
      {"NodeInputsIsObject",
       [] { return withModel([](Json& m) { graphOf(m)["nodes"][3]["inputs"] = Json::object(); }); }, "inputs"},
      {"SizeIsString",
       [] {
         return withModel([](Json& m) { graphOf(m)["tensor_values"].begin().value()["sizes"][0]["as_int"] = "8"; });
       },
       "sizes"},
      {"ScalarArgIsList",
       [] {
         return withModel([](Json& m) { graphOf(m)["nodes"][0]["inputs"][1]["arg"]["as_float"] = Json::array(); });
       },
       "as_float"},
      {"UnknownArgumentKind",
       [] { return withModel([](Json& m) { graphOf(m)["nodes"][0]["inputs"][0]["arg"] = {{"as_mystery", 1}}; }); },
       "as_mystery"},
      // A graph that does not hold together.
      {"NodeUsesUndefinedValue",
       [] {
         return withModel([](Json& m) { graphOf(m)["nodes"][6]["inputs"][0]["arg"]["as_tensor"]["name"] = "ghost"; });
       },
       "ghost"},
      {"ValueDefinedTwice",
       [] {
         return withModel([](Json& m) {
           Json& nodes = graphOf(m)["nodes"];
           nodes[2]["outputs"] = nodes[0]["outputs"];
         });
       },
       "quantize_per_tensor"},
      {"GraphCycle",
       [] {
         return withModel([](Json& m) {
           Json& nodes = graphOf(m)["nodes"];
           nodes[1]["inputs"][0]["arg"] = nodes[8]["outputs"][0];
         });
       },
       "before it is defined"},
      {"OutputNamesUndefinedValue",
       [] { return withModel([](Json& m) { graphOf(m)["outputs"][0]["as_tensor"]["name"] = "ghost"; }); }, "ghost"},
      {"TensorValueMissing",
       [] {
         return withModel([](Json& m) {
           Json& g = graphOf(m);
           g["tensor_values"].erase(g["nodes"][3]["outputs"][0]["as_tensor"]["name"].get<std::string>());
         });
       },
       "tensor_values"},
      // Signature entries pointing nowhere.
      {"InputSpecNamesUnknownInput",
       [] {
         return withModel(
             [](Json& m) { m["graph_module"]["signature"]["input_specs"][0]["parameter"]["arg"]["name"] = "ghost"; });
       },
       "ghost"},
      {"InputSpecCountWrong",
       [] { return withModel([](Json& m) { m["graph_module"]["signature"]["input_specs"].erase(0); }); },
       "input specs"},
      {"OutputSpecNamesUnknownValue",
       [] {
         return withModel([](Json& m) {
           m["graph_module"]["signature"]["output_specs"][0]["user_output"]["arg"]["as_tensor"]["name"] = "ghost";
         });
       },
       "its signature entry names 'ghost'"},
      {"ParameterNotInStateDict",
       [] {
         return withModel([](Json& m) {
           m["graph_module"]["signature"]["input_specs"][0]["parameter"]["parameter_name"] = "ghost.weight";
         });
       },
       "ghost.weight"},
      {"ModelJsonMissing", [model] { return withoutRecord(model); }, "no models/*.json"},
      // Payload configs and payloads.
      {"PayloadRecordMissing", [] { return withConfig([](Json& c) { firstWeight(c)["path_name"] = "weight_999"; }); },
       "weight_999"},
      {"PayloadShorterThanMeta",
       [] { return withConfig([](Json& c) { firstWeight(c)["tensor_meta"]["sizes"][0]["as_int"] = 800; }); }, "bytes"},
      {"PayloadDtypeUnknown", [] { return withConfig([](Json& c) { firstWeight(c)["tensor_meta"]["dtype"] = 99; }); },
       "dtype"},
      {"PayloadSizeNegative",
       [] { return withConfig([](Json& c) { firstWeight(c)["tensor_meta"]["sizes"][0]["as_int"] = -1; }); },
       "negative size"},
      {"PayloadElementCountOverflows",
       [] {
         return withConfig([](Json& c) {
           Json& meta = firstWeight(c)["tensor_meta"];
           for (auto& s : meta["sizes"]) s["as_int"] = 1ll << 40;
         });
       },
       "element count overflows"},
      {"PayloadStrideOverflows",
       [] { return withConfig([](Json& c) { firstWeight(c)["tensor_meta"]["strides"][0]["as_int"] = 1ll << 62; }); },
       "overflows"},
      {"PayloadOffsetNegative",
       [] { return withConfig([](Json& c) { firstWeight(c)["tensor_meta"]["storage_offset"]["as_int"] = -4; }); },
       "negative storage offset"},
      {"PayloadOffsetPastRecord",
       [] { return withConfig([](Json& c) { firstWeight(c)["tensor_meta"]["storage_offset"]["as_int"] = 1 << 20; }); },
       "bytes"},
      {"UsePickleIsString", [] { return withConfig([](Json& c) { firstWeight(c)["use_pickle"] = "yes"; }); },
       "use_pickle"},
      {"ConfigIsList", [] { return withConfig([](Json& c) { c["config"] = Json::array(); }); }, "config"},
  };
}

class MalformedInput : public ::testing::TestWithParam<Corruption> {
 protected:
  void SetUp() override { dir_ = testing::makeTempDir("malformed"); }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

TEST_P(MalformedInput, IsRejectedCleanly) {
  const Corruption& c = GetParam();
  const std::string bytes = c.make();
  const std::string input = (dir_ / "bad.pt2").string();
  const std::string output = (dir_ / "out.pt2").string();
  const std::string err_path = (dir_ / "stderr.txt").string();
  writeFile(input, bytes);
  std::string command = std::string(QATFOLD_CLI) + " fold " + input + " -o " + output + " " + c.extra_args +
                        " >/dev/null 2>" + err_path + " </dev/null";
  int status = std::system(command.c_str());
  const std::string err = readFile(err_path);
  RecordProperty("message", err.substr(0, err.find('\n')));

  ASSERT_TRUE(WIFEXITED(status)) << "killed by a signal: " << err;
  EXPECT_EQ(WEXITSTATUS(status), 1) << err;
  EXPECT_EQ(err.rfind("qatfold: error: " + input + ": ", 0), 0u) << err;
  EXPECT_NE(err.find(c.expected), std::string::npos) << "expected '" << c.expected << "' in: " << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  EXPECT_FALSE(std::filesystem::exists(output));
  EXPECT_EQ(readFile(input), bytes) << "the input was changed";
  for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
    EXPECT_EQ(entry.path().filename().string().find(".qatfold-"), std::string::npos) << "left behind: " << entry.path();
  }
}

INSTANTIATE_TEST_SUITE_P(Corpus, MalformedInput, ::testing::ValuesIn(corpus()),
                         [](const ::testing::TestParamInfo<Corruption>& info) { return info.param.name; });

TEST(MalformedInputCorpus, HasAtLeastFortyDistinctCorruptions) {
  std::set<std::string> names;
  std::set<std::string> archives;
  for (const Corruption& c : corpus()) {
    names.insert(c.name);
    archives.insert(c.make() + c.extra_args);
  }
  EXPECT_GE(names.size(), 40u);
  EXPECT_EQ(archives.size(), corpus().size()) << "two cases build the same input";
}

// ---- numerically invalid parameters --------------------------------------------
//
// A program whose BatchNorm or quantization parameters are NaN, infinite,
// negative or zero is still a valid program: qatfold writes it, but leaves
// that chain unfolded (the un-folded chain is what the numbers say) and
// tells why. The other chain of the fixture still folds.

struct InvalidNumbers {
  std::string name;
  std::function<std::string()> make;
  std::string reason;  // part of the --explain line for the skipped chain
};

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

std::string withBiasScale(const Json& scale) {
  // The fixture's one int32 dequantize is conv2's bias: found by what it
  // is, not by where the exporter put it.
  return withModel([&](Json& m) {
    for (Json& node : graphOf(m)["nodes"]) {
      bool int32 = false;
      for (const Json& input : node["inputs"]) int32 = int32 || input["arg"] == Json{{"as_scalar_type", 4}};
      if (!int32 || node["target"] != "torch.ops.quantized_decomposed.dequantize_per_tensor.default") continue;
      for (Json& input : node["inputs"]) {
        if (input["name"] == "scale") input["arg"]["as_float"] = scale;
      }
      return;
    }
    throw std::logic_error("the fixture has no int32 dequantize");
  });
}

std::vector<InvalidNumbers> invalidNumbers() {
  using testing::withPayloadFloat;
  return {
      {"RunningVarNaN", [] { return withPayloadFloat(kStored, "bn2.running_var", 3, kNaN); },
       "running_var + eps is nan for channel 3"},
      {"RunningVarInfinite", [] { return withPayloadFloat(kStored, "bn2.running_var", 0, kInf); },
       "running_var + eps is inf for channel 0"},
      {"RunningVarNegative", [] { return withPayloadFloat(kStored, "bn2.running_var", 5, -1.0f); },
       "for channel 5, not a positive finite number"},
      {"RunningMeanNaN", [] { return withPayloadFloat(kStored, "bn2.running_mean", 1, kNaN); }, "non-finite shift"},
      {"BatchNormWeightNaN", [] { return withPayloadFloat(kStored, "bn2.weight", 2, kNaN); }, "non-finite shift"},
      {"BatchNormBiasInfinite", [] { return withPayloadFloat(kStored, "bn2.bias", 7, kInf); }, "non-finite shift"},
      {"OrigBiasNaN", [] { return withPayloadFloat(kStored, "conv2.bias", 0, kNaN); }, "non-finite shift"},
      {"BiasScaleZero", [] { return withBiasScale(0.0); }, "the bias scale is not a positive finite number"},
      {"BiasScaleNegative", [] { return withBiasScale(-2e-5); }, "the bias scale is not a positive finite number"},
      {"BiasScaleNaN", [] { return withBiasScale("NaN"); }, "the bias scale is not a positive finite number"},
      {"Int32BiasStoredAsFloat",
       [] { return withConfig([](Json& c) { c["config"]["_frozen_param2"]["tensor_meta"]["dtype"] = 7; }); },
       "is not a constant int32 tensor"},
  };
}

class InvalidNumbersTest : public ::testing::TestWithParam<InvalidNumbers> {
 protected:
  void SetUp() override { dir_ = testing::makeTempDir("numbers"); }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

TEST_P(InvalidNumbersTest, ChainIsKeptWithAReason) {
  const InvalidNumbers& c = GetParam();
  const std::string bytes = c.make();
  const std::string input = (dir_ / "in.pt2").string();
  const std::string output = (dir_ / "out.pt2").string();
  const std::string out_path = (dir_ / "stdout.txt").string();
  writeFile(input, bytes);
  std::string command =
      std::string(QATFOLD_CLI) + " fold --explain " + input + " -o " + output + " >" + out_path + " 2>&1 </dev/null";
  int status = std::system(command.c_str());
  const std::string out = readFile(out_path);

  ASSERT_TRUE(WIFEXITED(status)) << out;
  EXPECT_EQ(WEXITSTATUS(status), 0) << out;
  EXPECT_NE(out.find(c.reason), std::string::npos) << "expected '" << c.reason << "' in:\n" << out;
  EXPECT_NE(out.find("folded 1, skipped 1"), std::string::npos) << out;
  EXPECT_EQ(readFile(input), bytes);
  LoadedProgram folded = LoadedProgram::open(output);
  int batch_norms = 0;
  for (const graph::Node* node : folded.graph->nodes())
    batch_norms += node->target().find("batch_norm") != std::string::npos;
  EXPECT_EQ(batch_norms, 1) << "only the chain with bad numbers keeps its batch_norm";
}

INSTANTIATE_TEST_SUITE_P(Corpus, InvalidNumbersTest, ::testing::ValuesIn(invalidNumbers()),
                         [](const ::testing::TestParamInfo<InvalidNumbers>& info) { return info.param.name; });

}  // namespace
}  // namespace qatfold
