#include <gtest/gtest.h>

#include <algorithm>

#include "qatfold/archive/archive.h"
#include "qatfold/error.h"
#include "qatfold/graph/graph.h"
#include "qatfold/program/program.h"
#include "test_support.h"

namespace qatfold::graph {
namespace {

using testing::fixturePath;

using Fixture = LoadedProgram;

Fixture build(const std::string& name) { return testing::loadFixture(name); }

std::size_t countTarget(const Graph& graph, const std::string& target) {
  auto nodes = graph.nodes();
  return static_cast<std::size_t>(
      std::count_if(nodes.begin(), nodes.end(), [&](const Node* n) { return n->target() == target; }));
}

TEST(Graph, BuildsDefUseChains) {
  Fixture f = build("qat_cadence_cnn.pt2");
  f.graph->lint();
  Value* conv = f.graph->getValue("conv2d");
  ASSERT_NE(conv->producer(), nullptr);
  EXPECT_EQ(conv->producer()->target(), "torch.ops.aten.conv2d.default");
  ASSERT_EQ(conv->users().size(), 1u);
  EXPECT_EQ(conv->users()[0]->target(), "torch.ops.quantized_decomposed.quantize_per_tensor.default");
  Value* weight = conv->producer()->getInput("weight");
  EXPECT_EQ(weight->producer()->target(), "torch.ops.quantized_decomposed.dequantize_per_tensor.default");
  Value* frozen = weight->producer()->getInput("input");
  EXPECT_TRUE(frozen->isPlaceholder());
  EXPECT_TRUE(frozen->isConstantTensor());
  EXPECT_EQ(frozen->payload()->meta.tensor_meta->dtype, program::ScalarType::kInt8);
  Value* bn_out = f.graph->outputs()[0];
  EXPECT_TRUE(bn_out->isGraphOutput());
  EXPECT_EQ(bn_out->producer()->target(), "torch.ops.aten.batch_norm.default");
  EXPECT_EQ(f.graph->tryGetPlaceholderFor("bn1.weight")->name(), "p_bn1_weight");
  EXPECT_EQ(f.graph->tryGetValue("no_such_value"), nullptr);
  EXPECT_THROW(f.graph->getValue("no_such_value"), Error);
}

TEST(Graph, EmitsTheProgramItWasBuiltFrom) {
  for (const std::string& name : testing::allFixtures()) {
    Fixture f = build(name);
    EXPECT_EQ(f.graph->toExportedProgram().toJson(), f.program->exported.toJson()) << name;
  }
}

TEST(Graph, ReplaceAllUsesThenDeadCodeRemovesTheBypassedChain) {
  Fixture f = build("qat_cadence_cnn.pt2");
  // Bypass the last batch_norm: the graph output becomes its input.
  Value* bn_out = f.graph->outputs()[0];
  Node* bn = bn_out->producer();
  Value* bn_in = bn->getInput("input");
  f.graph->replaceAllUsesWith(bn_out, bn_in);
  EXPECT_FALSE(bn_out->isGraphOutput());
  EXPECT_TRUE(bn_in->isGraphOutput());
  std::size_t before = f.graph->nodes().size();
  EXPECT_EQ(f.graph->eliminateDeadCode(), 1u);
  EXPECT_EQ(f.graph->nodes().size(), before - 1);
  EXPECT_EQ(countTarget(*f.graph, "torch.ops.aten.batch_norm.default"), 1u);
  f.graph->lint();
  // bn2's running mean is now unused: it goes, with its payload.
  EXPECT_EQ(f.graph->tryGetPlaceholderFor("bn2.running_mean")->useCount(), 0u);
  std::size_t weights_before = f.graph->weights().size();
  EXPECT_GE(f.graph->removeUnusedConstants(), 2u);  // bn2.bias, bn2.running_mean
  EXPECT_EQ(f.graph->tryGetPlaceholderFor("bn2.running_mean"), nullptr);
  EXPECT_EQ(f.graph->tryGetPlaceholderFor("bn2.bias"), nullptr);
  EXPECT_LT(f.graph->weights().size(), weights_before);
  // Inputs the exporter left unused (num_batches_tracked) stay.
  EXPECT_NE(f.graph->tryGetPlaceholderFor("bn1.num_batches_tracked"), nullptr);
  f.graph->lint();
}

TEST(Graph, EraseRefusesNodesWhoseOutputsAreUsed) {
  Fixture f = build("qat_cadence_cnn.pt2");
  Node* conv = f.graph->getValue("conv2d")->producer();
  EXPECT_THROW(f.graph->eraseNode(conv), Error);
  f.graph->lint();
}

TEST(Graph, InsertsNodesAndConstantTensors) {
  Fixture f = build("float_cnn.pt2");
  Value* conv = f.graph->getValue("conv2d");
  Node* bn = conv->users()[0];
  std::vector<float> ones(8, 1.0f);
  auto meta = program::TensorMeta::contiguous(program::ScalarType::kFloat32, {1, 8, 1, 1});
  Value* constant = f.graph->addConstantTensor(program::InputKind::kBuffer, "extra.scale", "b_extra_scale", meta,
                                               std::make_shared<Storage>(encodeValues(ones)));
  EXPECT_EQ(constant->target(), "extra.scale");
  NodeSpec spec;
  spec.target = "torch.ops.aten.mul.Tensor";
  spec.inputs = {{"self", conv}, {"other", constant}};
  spec.name_hint = "mul";
  spec.output_meta = *conv->meta();
  Node* mul = f.graph->insertNodeBefore(bn, spec);
  f.graph->setInput(bn, "input", mul->output());
  f.graph->lint();
  auto nodes = f.graph->nodes();
  auto pos_mul = std::find(nodes.begin(), nodes.end(), mul);
  auto pos_bn = std::find(nodes.begin(), nodes.end(), bn);
  EXPECT_LT(pos_mul, pos_bn);
  EXPECT_EQ(mul->output()->name(), "mul");  // free name taken as is
  Node* second = f.graph->insertNodeBefore(bn, spec);
  EXPECT_EQ(second->output()->name(), "mul_1");  // then derived
  EXPECT_EQ(f.graph->eliminateDeadCode(), 1u);   // the unused second mul
  program::ExportedProgram emitted = f.graph->toExportedProgram();
  auto it = std::find_if(emitted.signature.input_specs.begin(), emitted.signature.input_specs.end(),
                         [](const auto& s) { return s.target == "extra.scale"; });
  ASSERT_NE(it, emitted.signature.input_specs.end());
  EXPECT_EQ(it->kind, program::InputKind::kBuffer);
  // The new buffer sits after the existing ones, before the user input.
  EXPECT_EQ(emitted.signature.input_specs.back().kind, program::InputKind::kUserInput);
}

TEST(Graph, LintCatchesBrokenInvariants) {
  // A node reading a value defined later is rejected when the graph is built.
  auto bytes = testing::withModelJson("float_cnn.pt2", [](Json& model) {
    auto& nodes = model["graph_module"]["graph"]["nodes"];
    std::swap(nodes[0], nodes[1]);
  });
  auto archive = Archive::fromBytes(bytes);
  auto program = Program::load(*archive);
  try {
    Graph graph(*program);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("before it is defined"), std::string::npos) << e.what();
  }
}

TEST(Graph, RefusesValuesDefinedTwice) {
  auto bytes = testing::withModelJson("float_cnn.pt2", [](Json& model) {
    auto& nodes = model["graph_module"]["graph"]["nodes"];
    nodes[1]["outputs"][0]["as_tensor"]["name"] = nodes[0]["outputs"][0]["as_tensor"]["name"];
  });
  auto archive = Archive::fromBytes(bytes);
  auto program = Program::load(*archive);
  EXPECT_THROW(Graph graph(*program), Error);
}

TEST(Graph, ReplaceTensorDataLeavesOtherViewsAlone) {
  Fixture f = build("tied_weights.pt2");
  Value* a = f.graph->tryGetPlaceholderFor("a.weight");
  Value* b = f.graph->tryGetPlaceholderFor("b.weight");
  ASSERT_EQ(a->payload()->storage, b->payload()->storage);
  auto before = b->payload()->view().values<float>();
  std::vector<float> zeros(36, 0.0f);
  f.graph->replaceTensorData(a, *a->payload()->meta.tensor_meta, std::make_shared<Storage>(encodeValues(zeros)));
  EXPECT_EQ(a->payload()->view().values<float>(), zeros);
  EXPECT_EQ(b->payload()->view().values<float>(), before);
  EXPECT_NE(a->payload()->storage, b->payload()->storage);
  f.graph->lint();
}

}  // namespace
TEST(Graph, IntegerDataNeverRequiresGrad) {
  // A float parameter (requires_grad) given int32 data, as bias quantization
  // does: torch cannot load an integer tensor that requires gradients.
  LoadedProgram loaded = testing::loadFixture("float_cnn.pt2");
  Graph& g = *loaded.graph;
  Value* bias = g.tryGetPlaceholderFor("conv1.bias");
  ASSERT_NE(bias, nullptr);
  ASSERT_TRUE(bias->meta()->requires_grad);
  const auto channels = bias->meta()->sizes[0];
  g.replaceTensorData(bias, program::TensorMeta::contiguous(program::ScalarType::kInt32, {channels}),
                      std::make_shared<Storage>(encodeValues(std::vector<std::int32_t>(channels, 3))));
  EXPECT_FALSE(bias->meta()->requires_grad);
  Value* weight = g.tryGetPlaceholderFor("conv1.weight");
  g.replaceTensorData(weight, *weight->payload()->meta.tensor_meta,
                      std::make_shared<Storage>(std::string(weight->payload()->storage->size(), '\0')));
  EXPECT_TRUE(weight->meta()->requires_grad) << "a float parameter keeps requires_grad";
}

}  // namespace qatfold::graph
