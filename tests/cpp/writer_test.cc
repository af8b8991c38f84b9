#include <gtest/gtest.h>

#include "qatfold/archive/archive.h"
#include "qatfold/fold.h"
#include "qatfold/graph/graph.h"
#include "qatfold/program/program.h"
#include "qatfold/writer/pt2_writer.h"
#include "test_support.h"

namespace qatfold {
namespace {

using testing::fixturePath;

std::string roundtripBytes(const std::string& fixture) {
  auto archive = Archive::open(fixturePath(fixture));
  auto program = Program::load(*archive);
  graph::Graph graph(*program);
  StringSink sink;
  writeProgram(*archive, graph, sink);
  return sink.bytes();
}

TEST(Writer, RoundTripKeepsEveryRecordByteIdentical) {
  for (const std::string& fixture : testing::allFixtures()) {
    auto original = Archive::open(fixturePath(fixture));
    auto result = Archive::fromBytes(roundtripBytes(fixture));
    ASSERT_EQ(result->paths(), original->paths()) << fixture;
    EXPECT_EQ(result->root(), original->root());
    for (const std::string& path : original->paths()) {
      EXPECT_EQ(result->read(path), original->read(path)) << fixture << ": " << path;
    }
    for (const ZipEntry& entry : result->zip().entries()) {
      EXPECT_EQ(entry.data_offset % 64, 0u) << fixture << ": " << entry.name;
    }
  }
}

TEST(Writer, IsDeterministic) {
  EXPECT_EQ(roundtripBytes("qat_cadence_cnn.pt2"), roundtripBytes("qat_cadence_cnn.pt2"));
}

TEST(Writer, WritesNewStoragesAndDropsUnreferencedRecords) {
  auto archive = Archive::open(fixturePath("tied_weights.pt2"));
  auto program = Program::load(*archive);
  graph::Graph graph(*program);
  graph::Value* a = graph.tryGetPlaceholderFor("a.weight");
  const std::string shared_record = a->payload()->storage->recordPath();
  std::vector<float> twos(36, 2.0f);
  // Give both tied views new data: the shared record is then unreferenced.
  for (const char* fqn : {"a.weight", "b.weight"}) {
    graph::Value* v = graph.tryGetPlaceholderFor(fqn);
    graph.replaceTensorData(v, *v->payload()->meta.tensor_meta, std::make_shared<Storage>(encodeValues(twos)));
  }
  StringSink sink;
  writeProgram(*archive, graph, sink);
  auto result = Archive::fromBytes(sink.bytes());
  auto reloaded = Program::load(*result);
  EXPECT_FALSE(result->has(shared_record));
  for (const char* fqn : {"a.weight", "b.weight"}) {
    auto payload = reloaded->findPayload(PayloadSection::kWeights, fqn);
    EXPECT_EQ(payload->view().values<float>(), twos);
    EXPECT_EQ(payload->meta.path_name.rfind("weight_", 0), 0u);
  }
  // Untouched payloads keep their records.
  EXPECT_EQ(reloaded->findPayload(PayloadSection::kWeights, "a.bias")->view().values<float>(),
            program->findPayload(PayloadSection::kWeights, "a.bias")->view().values<float>());
}

TEST(Writer, AtomicFileWriteLeavesNoTemporaryFiles) {
  auto dir = testing::makeTempDir("writer");
  auto archive = Archive::open(fixturePath("float_cnn.pt2"));
  auto program = Program::load(*archive);
  graph::Graph graph(*program);
  const std::string out = (dir / "out.pt2").string();
  writeProgramFile(*archive, graph, out);
  std::size_t files = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir)) ++files;
  EXPECT_EQ(files, 1u);
  EXPECT_EQ(testing::readFile(out), roundtripBytes("float_cnn.pt2"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace qatfold

namespace qatfold {
namespace {

// A node, tensor meta or spec no pass touched is written back from its own
// bytes, whatever their formatting: here the fixture's first node, one
// tensor meta and one input spec are spelt compactly (nlohmann's dump, not
// json.dumps), and survive a fold that changes other nodes byte for byte.
TEST(Writer, UntouchedPartsAreCopiedFromTheirOwnBytes) {
  auto archive = Archive::open(fixturePath("qat_cadence_cnn.pt2"));
  const std::string model_path = "models/model.json";
  Json model = parseJson(archive->read(model_path));
  Json& graph = model["graph_module"]["graph"];
  const std::string node = graph["nodes"][0].dump();
  const std::string meta = graph["tensor_values"].begin().value().dump();
  const std::string spec = model["graph_module"]["signature"]["input_specs"].back().dump();
  ASSERT_NE(node, dumpJson(graph["nodes"][0]));  // compact: not json.dumps's spelling
  ASSERT_NE(meta, dumpJson(graph["tensor_values"].begin().value()));
  graph["nodes"][0] = "@@node@@";
  graph["tensor_values"].begin().value() = "@@meta@@";
  model["graph_module"]["signature"]["input_specs"].back() = "@@spec@@";
  std::string text = dumpJson(model);
  for (const auto& [marker, replacement] :
       {std::pair{"\"@@node@@\"", node}, {"\"@@meta@@\"", meta}, {"\"@@spec@@\"", spec}}) {
    text.replace(text.find(marker), std::string(marker).size(), replacement);
  }
  ArchiveEdit edit;
  edit.put(model_path, text);
  FoldedArchive folded = foldArchiveBytes(testing::rewrite(*archive, edit), {});
  ASSERT_EQ(folded.report.folded.size(), 2u);
  const std::string written = Archive::fromBytes(folded.archive)->read(model_path);
  EXPECT_NE(written.find(node), std::string::npos);
  EXPECT_NE(written.find(meta), std::string::npos);
  EXPECT_NE(written.find(spec), std::string::npos);
  EXPECT_NE(written, text);  // the fold did change the program
  EXPECT_NO_THROW(parseJson(written));
}

// The writer replaces the graph's and the signature's spans in whichever
// order the record has them.
TEST(Writer, SignatureBeforeGraphIsWrittenInPlace) {
  auto bytes = testing::withModelJson("qat_cadence_cnn.pt2", [](Json& model) {
    Json& module = model["graph_module"];
    Json reordered = Json::object();
    reordered["signature"] = module["signature"];
    for (auto it = module.begin(); it != module.end(); ++it) {
      if (it.key() != "signature") reordered[it.key()] = it.value();
    }
    module = std::move(reordered);
  });
  FoldedArchive folded = foldArchiveBytes(bytes, {});
  ASSERT_EQ(folded.report.folded.size(), 2u);
  const Json written = parseJson(Archive::fromBytes(folded.archive)->read("models/model.json"));
  EXPECT_EQ(written["graph_module"].begin().key(), "signature");
  // Folding again finds nothing left: the rewritten graph and signature are whole.
  EXPECT_EQ(foldArchiveBytes(folded.archive, {}).report.folded.size(), 0u);
  EXPECT_EQ(written["graph_module"]["signature"]["input_specs"].size(),
            written["graph_module"]["graph"]["inputs"].size());
}

}  // namespace
}  // namespace qatfold
