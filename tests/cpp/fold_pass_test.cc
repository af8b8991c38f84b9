// The fold pipeline on the committed Cadence QAT program: the positive case,
// then one named no-fold case per guard, each made by editing the program.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>

#include "qatfold/archive/archive.h"
#include "qatfold/graph/graph.h"
#include "qatfold/passes/pipeline.h"
#include "qatfold/passes/quantize_conv_bias.h"
#include "qatfold/program/program.h"
#include "qatfold/writer/pt2_writer.h"
#include "test_support.h"

namespace qatfold::passes {
namespace {

using testing::fixturePath;

struct Folded : LoadedProgram {
  FoldReport report;

  std::size_t count(const std::string& target) const {
    auto nodes = graph->nodes();
    return static_cast<std::size_t>(std::count_if(nodes.begin(), nodes.end(), [&](auto* n) { return n->target() == target; }));
  }
  const SkippedBatchNorm* skipped(const std::string& name) const {
    for (const auto& s : report.skipped) {
      if (s.batch_norm == name) return &s;
    }
    return nullptr;
  }
};

Folded fold(std::unique_ptr<Archive> archive, const std::function<void(graph::Graph&)>& before = {},
            const FoldOptions& options = {}) {
  Folded f;
  static_cast<LoadedProgram&>(f) = LoadedProgram::fromArchive(std::move(archive));
  if (before) before(*f.graph);
  f.report = runFoldPipeline(*f.graph, options);
  return f;
}

Folded foldFixture(const std::string& name) { return fold(Archive::open(fixturePath(name))); }

// The fixture with its model JSON edited.
Folded foldEdited(const std::function<void(Json&)>& edit, const FoldOptions& options = {}) {
  return fold(Archive::fromBytes(testing::withModelJson("qat_cadence_cnn.pt2", edit)), {}, options);
}

Json& nodeNamed(Json& model, const std::string& name) {
  for (Json& node : model["graph_module"]["graph"]["nodes"]) {
    if (node["name"] == name) return node;
  }
  throw std::runtime_error("no node " + name);
}

Json& inputNamed(Json& node, const std::string& name) {
  for (Json& input : node["inputs"]) {
    if (input["name"] == name) return input["arg"];
  }
  throw std::runtime_error("no input " + name);
}

const std::string kBatchNorm = "torch.ops.aten.batch_norm.default";

TEST(FoldQatConvBatchNorm, FoldsEveryChainOfTheCadenceProgram) {
  Folded f = foldFixture("qat_cadence_cnn.pt2");
  ASSERT_EQ(f.report.folded.size(), 2u);
  EXPECT_EQ(f.count(kBatchNorm), 0u);
  EXPECT_EQ(f.count("torch.ops.aten.div.Tensor"), 0u);
  EXPECT_EQ(f.count("torch.ops.aten.sqrt.default"), 0u);
  EXPECT_EQ(f.count("torch.ops.aten.reshape.default"), 0u);
  EXPECT_EQ(f.count("torch.ops.aten.add.Tensor"), 0u);
  EXPECT_EQ(f.count("torch.ops.aten.conv2d.default"), 2u);
  // conv1 had no bias: it got a zero int32 one, then the BN shift.
  ASSERT_EQ(f.report.prepared.size(), 1u);
  EXPECT_EQ(f.report.prepared[0].conv, "conv2d");
  // The chain's users now read the conv's own dequantized output.
  graph::Value* output = f.graph->outputs()[0];
  EXPECT_EQ(output->name(), "dequantize_per_tensor_7");
  // BN parameters and buffers are gone with their payloads; unused exporter inputs stay.
  EXPECT_EQ(f.graph->tryGetPlaceholderFor("bn1.running_mean"), nullptr);
  EXPECT_EQ(f.graph->tryGetPlaceholderFor("bn2.weight"), nullptr);
  EXPECT_NE(f.graph->tryGetPlaceholderFor("bn1.num_batches_tracked"), nullptr);
  EXPECT_GE(f.report.removed_constants, 8u);
  for (const FoldedChain& chain : f.report.folded) {
    EXPECT_EQ(chain.channels, 8);
    EXPECT_EQ(chain.clamped, 0u);
    EXPECT_FALSE(chain.copied_bias);
    EXPECT_GT(chain.risk.relative_shift, 0.0);
  }
  EXPECT_EQ(f.report.folded[0].module_path, "conv1");
  f.graph->lint();
}

TEST(FoldQatConvBatchNorm, FoldsTheCoreAtenForm) {
  Folded f = foldFixture("qat_cadence_cnn_decomposed.pt2");
  EXPECT_EQ(f.report.folded.size(), 2u);
  EXPECT_EQ(f.count("torch.ops.aten._native_batch_norm_legit_no_training.default"), 0u);
  EXPECT_EQ(f.count("torch.ops.aten.convolution.default"), 2u);
}

TEST(FoldQatConvBatchNorm, WrittenArchiveHoldsTheNewBiases) {
  Folded f = foldFixture("qat_cadence_cnn.pt2");
  StringSink sink;
  writeProgram(*f.archive, *f.graph, sink);
  auto archive = Archive::fromBytes(sink.bytes());
  auto program = Program::load(*archive);
  graph::Graph reread(*program);
  for (const char* conv : {"conv2d", "conv2d_1"}) {
    graph::Value* bias = reread.getValue(conv)->producer()->getInput("bias")->producer()->getInput("input");
    EXPECT_EQ(bias->payload()->view().values<std::int32_t>(),
              f.graph->getValue(conv)->producer()->getInput("bias")->producer()->getInput("input")->payload()->view().values<std::int32_t>());
  }
  reread.lint();
}

TEST(FoldQatConvBatchNorm, NoFoldTrainingMode) {
  Folded f = foldEdited([](Json& m) { inputNamed(nodeNamed(m, "batch_norm"), "training") = Json{{"as_bool", true}}; });
  EXPECT_EQ(f.report.folded.size(), 1u);
  ASSERT_NE(f.skipped("batch_norm"), nullptr);
  EXPECT_EQ(f.skipped("batch_norm")->reason, "batch_norm runs in training mode");
  EXPECT_EQ(f.count(kBatchNorm), 1u);
}

// The fixture's per-tensor conv1 with its scale chain's eps set to `eps`.
Folded foldWithChainEps(double eps, const FoldOptions& options = {}) {
  return foldEdited([eps](Json& m) { inputNamed(nodeNamed(m, "add"), "other") = Json{{"as_float", eps}}; }, options);
}

TEST(FoldQatConvBatchNorm, EpsMismatchBeyondToleranceIsRefusedPerTensor) {
  // bn1's running_var is 0.56..0.64, so r reaches sqrt(0.5616 + 0.01) / sqrt(0.5616 + 1e-5) = 1.00885.
  Folded f = foldWithChainEps(0.01);
  ASSERT_NE(f.skipped("batch_norm"), nullptr);
  const std::string& reason = f.skipped("batch_norm")->reason;
  EXPECT_EQ(reason, "the scale chain's eps 0.01 differs from batch_norm's eps 1e-05; with per-tensor weights "
                    "the output would be off by up to 0.885%, more than --eps-tolerance 0.001") << reason;
  EXPECT_TRUE(f.skipped("batch_norm")->qat_chain);
  EXPECT_EQ(f.report.folded.size(), 1u) << "the other chain still folds";
}

TEST(FoldQatConvBatchNorm, EpsMismatchWithinToleranceFoldsAndIsReported) {
  for (double eps : {0.001, 0.01}) {
    // r - 1 is at most 0.00088 for 0.001 (under the default tolerance), 0.00885 for 0.01 (raise it).
    Folded f = foldWithChainEps(eps, {kDefaultRiskThreshold, eps > 0.005 ? 0.01 : kDefaultEpsTolerance});
    ASSERT_EQ(f.report.folded.size(), 2u);
    const FoldedChain& chain = f.report.folded[0].batch_norm == "batch_norm" ? f.report.folded[0] : f.report.folded[1];
    ASSERT_TRUE(chain.eps_mismatch.has_value());
    EXPECT_FALSE(chain.eps_mismatch->in_weight_scales);
    EXPECT_EQ(chain.eps_mismatch->batch_norm_eps, 1e-5);
    EXPECT_GE(chain.eps_mismatch->factor_min, 1.0f);  // eps_chain > eps_bn: r > 1
    EXPECT_GT(chain.eps_mismatch->factor_max, 1.0f);
    EXPECT_NE(f.report.toText(false).find("eps mismatch: conv2d: chain eps"), std::string::npos);
    EXPECT_EQ(f.count(kBatchNorm), 0u);
  }
}

TEST(FoldQatConvBatchNorm, NoFoldDivisorFromAnotherBatchNorm) {
  Folded f = foldEdited([](Json& m) { inputNamed(nodeNamed(m, "div"), "self") = Json{{"as_tensor", {{"name", "p_bn2_weight"}}}}; });
  ASSERT_NE(f.skipped("batch_norm"), nullptr);
  EXPECT_EQ(f.skipped("batch_norm")->reason, "the divisor is not built from this batch_norm's own weight and running_var");
  EXPECT_EQ(f.report.folded.size(), 1u);
}

TEST(FoldQatConvBatchNorm, NoFoldChainValueUsedOutside) {
  Folded f = foldEdited([](Json& m) {
    m["graph_module"]["graph"]["outputs"].push_back(Json{{"as_tensor", {{"name", "dequantize_per_tensor_2"}}}});
    m["graph_module"]["signature"]["output_specs"].push_back(
        Json{{"user_output", {{"arg", {{"as_tensor", {{"name", "dequantize_per_tensor_2"}}}}}}}});
  });
  ASSERT_NE(f.skipped("batch_norm"), nullptr);
  EXPECT_EQ(f.skipped("batch_norm")->reason, "'dequantize_per_tensor_2' is also a graph output outside the chain");
}

TEST(FoldQatConvBatchNorm, NoFoldNonConstantBatchNormParameter) {
  Folded f = foldEdited([](Json& m) {
    inputNamed(nodeNamed(m, "batch_norm"), "running_mean") = Json{{"as_tensor", {{"name", "x"}}}};
  });
  ASSERT_NE(f.skipped("batch_norm"), nullptr);
  EXPECT_EQ(f.skipped("batch_norm")->reason, "running_mean is not a constant parameter, buffer or tensor constant");
}

TEST(FoldQatConvBatchNorm, NoFoldConvOutputReadBesideTheChain) {
  // div_1 reads the conv output directly while its quantize still reads it too.
  Folded f = foldEdited([](Json& m) { inputNamed(nodeNamed(m, "div_1"), "self") = Json{{"as_tensor", {{"name", "conv2d"}}}}; });
  ASSERT_NE(f.skipped("batch_norm"), nullptr);
  EXPECT_EQ(f.skipped("batch_norm")->reason,
            "'conv2d' is also used by 'quantize_per_tensor_1' (torch.ops.quantized_decomposed.quantize_per_tensor.default) "
            "outside the chain");
}

TEST(FoldQatConvBatchNorm, FoldsIntoInt32BiasWithoutQuantizeDequantizeAfterTheConv) {
  // A quantizer that annotates conv + BN as one unit puts no q/dq between them.
  Folded f = foldEdited([](Json& m) {
    Json& nodes = m["graph_module"]["graph"]["nodes"];
    inputNamed(nodeNamed(m, "div_1"), "self") = Json{{"as_tensor", {{"name", "conv2d"}}}};
    Json kept = Json::array();
    for (Json& node : nodes) {
      const std::string name = node["name"];
      if (name != "quantize_per_tensor_1" && name != "dequantize_per_tensor_2") kept.push_back(node);
    }
    nodes = kept;
  });
  ASSERT_EQ(f.report.folded.size(), 2u);
  const FoldedChain& chain = f.report.folded[0].conv == "conv2d" ? f.report.folded[0] : f.report.folded[1];
  EXPECT_FALSE(chain.output_quantized);
  EXPECT_FALSE(chain.float_bias);
  EXPECT_EQ(f.count(kBatchNorm), 0u);
  Json json = f.report.toJson();
  for (const Json& c : json["folded"]) {
    if (c["conv"] == "conv2d") {
      EXPECT_TRUE(c["relative_shift"].is_null());
      EXPECT_TRUE(c["output_range"].is_null());
    }
  }
}

TEST(FoldQatConvBatchNorm, NoFoldNonPositiveVariance) {
  Folded f = fold(Archive::open(fixturePath("qat_cadence_cnn.pt2")), [](graph::Graph& g) {
    graph::Value* var = g.tryGetPlaceholderFor("bn1.running_var");
    std::vector<float> negative(8, -1.0f);
    g.replaceTensorData(var, *var->payload()->meta.tensor_meta, std::make_shared<Storage>(encodeValues(negative)));
  });
  ASSERT_NE(f.skipped("batch_norm"), nullptr);
  EXPECT_EQ(f.skipped("batch_norm")->reason,
            "running_var + eps is -0.9999899864196777 for channel 0, not a positive finite number");
}

TEST(FoldQatConvBatchNorm, NoFoldPlainBatchNormSaysWhy) {
  Folded f = foldFixture("float_cnn.pt2");
  EXPECT_TRUE(f.report.folded.empty());
  ASSERT_EQ(f.report.skipped.size(), 1u);
  EXPECT_FALSE(f.report.skipped[0].qat_chain);
  EXPECT_NE(f.report.skipped[0].reason.find("not from a QAT conv chain"), std::string::npos);
  EXPECT_TRUE(f.report.prepared.empty());  // float convs keep their float biases
}

TEST(FoldQatConvBatchNorm, SharedBiasGetsItsOwnCopy) {
  // The int32 bias is also a graph output: writing it in place would change that output.
  Folded f = foldEdited([](Json& m) {
    m["graph_module"]["graph"]["outputs"].push_back(Json{{"as_tensor", {{"name", "b__frozen_param2"}}}});
    m["graph_module"]["signature"]["output_specs"].push_back(
        Json{{"user_output", {{"arg", {{"as_tensor", {{"name", "b__frozen_param2"}}}}}}}});
  });
  ASSERT_EQ(f.report.folded.size(), 2u);
  const FoldedChain& chain = f.report.folded[1];
  EXPECT_EQ(chain.conv, "conv2d_1");
  EXPECT_TRUE(chain.copied_bias);
  graph::Value* original = f.graph->getValue("b__frozen_param2");
  graph::Value* used = f.graph->getValue("conv2d_1")->producer()->getInput("bias")->producer()->getInput("input");
  EXPECT_NE(original, used);
  EXPECT_EQ(original->payload()->view().values<std::int32_t>(),
            f.program->findPayload(PayloadSection::kWeights, original->target())->view().values<std::int32_t>());
  EXPECT_NE(used->payload()->view().values<std::int32_t>(), original->payload()->view().values<std::int32_t>());
}

TEST(FoldQatConvBatchNorm, ReportsClampedBiasElements) {
  Folded f = foldEdited([](Json& m) {
    inputNamed(nodeNamed(m, "dequantize_per_tensor_6"), "scale") = Json{{"as_float", 1e-12}};
  });
  ASSERT_EQ(f.report.folded.size(), 2u);
  EXPECT_EQ(f.report.folded[1].clamped, 8u);
  EXPECT_EQ(f.report.clampedTotal(), 8u);
  graph::Value* bias = f.graph->getValue("conv2d_1")->producer()->getInput("bias")->producer()->getInput("input");
  for (std::int32_t v : bias->payload()->view().values<std::int32_t>()) {
    EXPECT_TRUE(v == INT32_MAX || v == INT32_MIN) << v;
  }
  EXPECT_NE(f.report.toText(false).find("clamped 8"), std::string::npos);
}

TEST(FoldQatConvBatchNorm, FlagsConvsAboveTheRiskThreshold) {
  LoadedProgram loaded = testing::loadFixture("qat_cadence_cnn.pt2");
  graph::Graph& graph = *loaded.graph;
  FoldReport report = runFoldPipeline(graph, {0.0});
  EXPECT_EQ(report.flaggedCount(), 2u);
  EXPECT_NE(report.toText(false).find("may clip"), std::string::npos);
  Json json = report.toJson();
  EXPECT_EQ(json["flagged_count"], 2);
  EXPECT_EQ(json["folded"][0]["flagged"], true);
}

TEST(QuantizeConvBias, LeavesFloatProgramsAlone) {
  Folded f = foldFixture("buffers.pt2");
  EXPECT_TRUE(f.report.prepared.empty());
  EXPECT_EQ(f.report.removed_nodes, 0u);
  EXPECT_EQ(f.graph->toExportedProgram().toJson(), f.program->exported.toJson());
}

}  // namespace
}  // namespace qatfold::passes

namespace qatfold::passes {
namespace {

TEST(QuantizeConvBias, SkipsConvsWhoseInputIsNotDequantized) {
  LoadedProgram loaded = testing::loadFixture("float_cnn.pt2");
  graph::Graph& graph = *loaded.graph;
  QuantizeConvBias pass;
  auto result = pass.match(*graph.getValue("conv2d")->producer());
  ASSERT_TRUE(std::holds_alternative<std::string>(result));
  EXPECT_EQ(std::get<std::string>(result), "input is not dequantized per tensor");
}

TEST(QuantizeConvBias, LeavesInt32BiasesAndAddsMissingOnes) {
  LoadedProgram loaded = testing::loadFixture("qat_cadence_cnn.pt2");
  graph::Graph& graph = *loaded.graph;
  QuantizeConvBias pass;
  auto biased = pass.match(*graph.getValue("conv2d_1")->producer());
  ASSERT_TRUE(std::holds_alternative<std::string>(biased));
  EXPECT_EQ(std::get<std::string>(biased), "bias is already quantized");
  auto missing = pass.match(*graph.getValue("conv2d")->producer());
  ASSERT_TRUE(std::holds_alternative<QuantizeConvBias::Match>(missing));
  const auto& m = std::get<QuantizeConvBias::Match>(missing);
  EXPECT_EQ(m.action, QuantizeConvBias::Action::kAddZeroBias);
  EXPECT_EQ(m.channels, 8);
  EXPECT_EQ(m.values, std::vector<std::int32_t>(8, 0));
  // s_b = s_in * s_w of the two dequantize nodes, as one double product.
  auto input_dq = readAffineQuantization(graph.getValue("conv2d")->producer()->getInput("input")->producer());
  auto weight_dq = readAffineQuantization(graph.getValue("conv2d")->producer()->getInput("weight")->producer());
  EXPECT_EQ(m.scale, input_dq->scale * weight_dq->scale);
  pass.rewrite(graph, m);
  graph.lint();
  graph::Node* bias_dq = graph.getValue("conv2d")->producer()->getInput("bias")->producer();
  EXPECT_EQ(bias_dq->target(), op::kDequantizePerTensor);
  EXPECT_EQ(bias_dq->getInput("input")->payload()->view().values<std::int32_t>(), m.values);
  EXPECT_EQ(bias_dq->getInput("input")->inputKind(), program::InputKind::kParameter);
}

TEST(FoldQatConvBatchNorm, NoFoldWhenSavedStatisticsAreRead) {
  // In the core ATen form, outputs 1 and 2 (saved mean/invstd) must be unused.
  auto bytes = testing::withModelJson("qat_cadence_cnn_decomposed.pt2", [](Json& m) {
    auto& bn = nodeNamed(m, "_native_batch_norm_legit_no_training");
    std::string saved = bn["outputs"][1]["as_tensor"]["name"];
    m["graph_module"]["graph"]["outputs"].push_back(Json{{"as_tensor", {{"name", saved}}}});
    m["graph_module"]["signature"]["output_specs"].push_back(
        Json{{"user_output", {{"arg", {{"as_tensor", {{"name", saved}}}}}}}});
  });
  Folded f = fold(Archive::fromBytes(bytes));
  ASSERT_NE(f.skipped("_native_batch_norm_legit_no_training"), nullptr);
  EXPECT_NE(f.skipped("_native_batch_norm_legit_no_training")->reason.find("saved statistics"), std::string::npos);
  EXPECT_EQ(f.report.folded.size(), 1u);
}

}  // namespace
}  // namespace qatfold::passes
