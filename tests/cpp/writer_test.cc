#include <gtest/gtest.h>

#include "qatfold/archive/archive.h"
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
