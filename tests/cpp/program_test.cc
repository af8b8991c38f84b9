#include <gtest/gtest.h>

#include <map>

#include "qatfold/archive/archive.h"
#include "qatfold/error.h"
#include "qatfold/program/program.h"
#include "test_support.h"

namespace qatfold {
namespace {

using program::ScalarType;
using testing::fixturePath;

LoadedProgram load(const std::string& fixture) { return testing::loadFixture(fixture); }

std::string loadError(const std::string& bytes) {
  try {
    auto archive = Archive::fromBytes(bytes);
    Program::load(*archive);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(InputKind, NamesRoundTripAsTheSchemaSpellsThem) {
  for (std::size_t i = 0; i < std::size(program::kInputKindNames); ++i) {
    const auto kind = static_cast<program::InputKind>(i);
    EXPECT_EQ(program::parseInputKind(program::inputKindName(kind)), kind);
  }
  EXPECT_EQ(program::inputKindName(program::InputKind::kTensorConstant), "tensor_constant");
  EXPECT_FALSE(program::parseInputKind("constant").has_value());
}

TEST(Program, ParsesTheQatProgram) {
  LoadedProgram loaded = load("qat_cadence_cnn.pt2");
  const auto& exported = loaded.program->exported;
  EXPECT_EQ(loaded.program->model_name, "model");
  EXPECT_EQ(exported.schema_major, 8);
  EXPECT_EQ(exported.torch_version.rfind("2.13.0", 0), 0u);
  std::map<std::string, int> targets;
  for (const auto& node : exported.graph.nodes) ++targets[node.target];
  EXPECT_EQ(targets["torch.ops.aten.batch_norm.default"], 2);
  EXPECT_EQ(targets["torch.ops.aten.conv2d.default"], 2);
  // The batch_norm inputs: training=False and eps read as typed arguments.
  for (const auto& node : exported.graph.nodes) {
    if (node.target != "torch.ops.aten.batch_norm.default") continue;
    ASSERT_EQ(node.inputs.size(), 9u);
    EXPECT_EQ(node.inputs[5].name, "training");
    EXPECT_EQ(node.inputs[5].arg.asBool(), false);
    EXPECT_EQ(node.inputs[7].arg.asFloat(), 1e-05);
    EXPECT_EQ(node.inputs[0].arg.tensorReferences().size(), 1u);
  }
  EXPECT_EQ(exported.signature.input_specs.size(), exported.graph.inputs.size());
  EXPECT_EQ(exported.signature.input_specs.back().kind, program::InputKind::kUserInput);
  EXPECT_EQ(exported.signature.output_specs[0].kind, "user_output");
  ASSERT_FALSE(exported.module_call_graph.empty());
  EXPECT_EQ(exported.module_call_graph[0].fqn, "");  // the root module
  EXPECT_NE(exported.module_call_graph[0].signature.find("\"in_spec\""), std::string_view::npos);
  ASSERT_FALSE(exported.opset_version.empty());
  EXPECT_EQ(exported.opset_version[0].first, "aten");
}

TEST(Program, EmitsTheJsonItParsed) {
  for (const std::string& fixture : testing::allFixtures()) {
    LoadedProgram loaded = load(fixture);
    std::string original = loaded.archive->read("models/model.json");
    EXPECT_EQ(parseJson(original), loaded.program->exported.toJson()) << fixture;
    EXPECT_EQ(dumpJson(loaded.program->exported.toJson()), original) << fixture;
  }
}

TEST(Program, TiedWeightsShareOneStorage) {
  LoadedProgram loaded = load("tied_weights.pt2");
  auto a = loaded.program->findPayload(PayloadSection::kWeights, "a.weight");
  auto b = loaded.program->findPayload(PayloadSection::kWeights, "b.weight");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->storage, b->storage);
  EXPECT_EQ(a->meta.path_name, b->meta.path_name);
  EXPECT_EQ(a->view().values<float>(), b->view().values<float>());
  EXPECT_EQ(a->view().values<float>().size(), 36u);
}

TEST(Program, ReadsTypedElementsHonouringViews) {
  LoadedProgram loaded = load("buffers.pt2");
  auto table = loaded.program->findPayload(PayloadSection::kWeights, "table");
  ASSERT_TRUE(table);
  EXPECT_EQ(table->meta.tensor_meta->dtype, ScalarType::kInt64);
  std::vector<std::int64_t> expected(12);
  for (int i = 0; i < 12; ++i) expected[i] = i;  // torch.arange(12).reshape(3, 4)
  EXPECT_EQ(table->view().values<std::int64_t>(), expected);
  EXPECT_THROW(table->view().values<float>(), Error);
  // Non-persistent buffers are stored with the constants.
  auto offset = loaded.program->findPayload(PayloadSection::kConstants, "offset");
  ASSERT_TRUE(offset);
  EXPECT_EQ(offset->view().asDoubles(), (std::vector<double>{0, 1, 2, 3, 4, 5}));
  auto scale = loaded.program->findPayload(PayloadSection::kWeights, "scale")->view().values<float>();
  EXPECT_FLOAT_EQ(scale.front(), 0.5f);
  EXPECT_FLOAT_EQ(scale.back(), 2.0f);
}

TEST(Program, StridedViewsGatherInRowMajorOrder) {
  // A 2x3 view with strides (1, 2) over six int32 values is the transpose.
  std::vector<std::int32_t> storage_values = {0, 1, 2, 3, 4, 5};
  auto storage = std::make_shared<Storage>(encodeValues(storage_values));
  program::TensorMeta meta = program::TensorMeta::contiguous(ScalarType::kInt32, {2, 3});
  meta.strides = {1, 2};
  EXPECT_EQ(TensorView(storage, meta).values<std::int32_t>(), (std::vector<std::int32_t>{0, 2, 4, 1, 3, 5}));
  meta.storage_offset = 1;
  EXPECT_THROW(TensorView(storage, meta), Error);  // the last element would be index 6
  meta.sizes = {1, 2};
  EXPECT_EQ(TensorView(storage, meta).values<std::int32_t>(), (std::vector<std::int32_t>{1, 3}));
}

TEST(Program, ReadsLiftedConstants) {
  LoadedProgram loaded = load("lifted_constants.pt2");
  ASSERT_EQ(loaded.program->constants.size(), 2u);
  bool found_int = false;
  for (const auto& payload : loaded.program->constants) {
    if (payload->meta.tensor_meta->dtype == ScalarType::kInt32) {
      found_int = true;
      EXPECT_EQ(payload->view().values<std::int32_t>(), (std::vector<std::int32_t>{3, -2, 7, 0, 1, 5}));
    }
  }
  EXPECT_TRUE(found_int);
}

TEST(Program, RefusesUnknownSchemaMajorVersion) {
  std::string bytes =
      testing::withModelJson("float_cnn.pt2", [](Json& model) { model["schema_version"]["major"] = 9; });
  EXPECT_NE(loadError(bytes).find("unsupported schema major version 9"), std::string::npos) << loadError(bytes);
}

TEST(Program, RefusesPayloadsThatDoNotFitTheirRecord) {
  std::string message = loadError(testing::withWeightsConfig("float_cnn.pt2", [](Json& config) {
    config["config"]["conv1.weight"]["tensor_meta"]["sizes"][0] = Json{{"as_int", 800}};
  }));
  EXPECT_NE(message.find("conv1.weight"), std::string::npos) << message;
  EXPECT_NE(message.find("needs"), std::string::npos) << message;
}

TEST(Program, ReportsTypeConfusionWithItsLocation) {
  std::string bytes = testing::withModelJson(
      "float_cnn.pt2", [](Json& model) { model["graph_module"]["graph"]["nodes"][0]["inputs"] = "not a list"; });
  std::string message = loadError(bytes);
  EXPECT_NE(message.find("nodes[0].inputs"), std::string::npos) << message;
  EXPECT_NE(message.find("expected a list"), std::string::npos) << message;
}

TEST(Program, RefusesArchivesWithoutAModel) {
  auto archive = Archive::open(fixturePath("float_cnn.pt2"));
  ArchiveEdit edit;
  edit.remove("models/model.json");
  EXPECT_NE(loadError(testing::rewrite(*archive, edit)).find("no models/*.json"), std::string::npos);
}

}  // namespace
}  // namespace qatfold
