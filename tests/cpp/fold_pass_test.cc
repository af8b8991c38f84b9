// The fold pipeline on the committed programs torch exported: both chains of
// the Cadence QAT program, its core ATen form, the archive written back, and
// the programs it leaves alone. The cases of one pattern each are text graphs
// (chain_fold_test.cc, refusal_test.cc).
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>

#include "qatfold/archive/archive.h"
#include "qatfold/graph/graph.h"
#include "qatfold/passes/pipeline.h"
#include "qatfold/passes/quantize_conv_bias.h"
#include "qatfold/program/program.h"
#include "qatfold/report/fold_report.h"
#include "qatfold/writer/pt2_writer.h"
#include "test_support.h"

namespace qatfold::passes {
namespace {

using testing::fixturePath;

struct Folded : LoadedProgram {
  FoldReport report;

  std::size_t count(const std::string& target) const {
    auto nodes = graph->nodes();
    return static_cast<std::size_t>(
        std::count_if(nodes.begin(), nodes.end(), [&](auto* n) { return n->target() == target; }));
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

const std::string kBatchNorm = "torch.ops.aten.batch_norm.default";

TEST(FoldPipeline, FoldsEveryChainOfTheCadenceProgram) {
  Folded f = foldFixture("qat_cadence_cnn.pt2");
  ASSERT_EQ(f.report.folded.size(), 2u);
  EXPECT_EQ(f.count(kBatchNorm), 0u);
  EXPECT_EQ(f.count("torch.ops.aten.div.Tensor"), 0u);
  EXPECT_EQ(f.count("torch.ops.aten.sqrt.default"), 0u);
  EXPECT_EQ(f.count("torch.ops.aten.reshape.default"), 0u);
  EXPECT_EQ(f.count("torch.ops.aten.add.Tensor"), 0u);
  EXPECT_EQ(f.count("torch.ops.aten.conv2d.default"), 2u);
  // conv1 had no bias: it got a zero int32 one, then the BN shift.
  ASSERT_EQ(f.report.prepared_biases.size(), 1u);
  EXPECT_EQ(f.report.prepared_biases[0].conv, "conv2d");
  // The chain's users now read the conv's own dequantized output.
  graph::Value* output = f.graph->outputs()[0];
  EXPECT_EQ(output->name(), "dequantize_per_tensor_7");
  // BN parameters and buffers are gone with their payloads; unused exporter inputs stay.
  EXPECT_EQ(f.graph->tryGetPlaceholderFor("bn1.running_mean"), nullptr);
  EXPECT_EQ(f.graph->tryGetPlaceholderFor("bn2.weight"), nullptr);
  EXPECT_NE(f.graph->tryGetPlaceholderFor("bn1.num_batches_tracked"), nullptr);
  EXPECT_GE(f.report.removed_constants, 8u);
  for (const FoldedConv& chain : f.report.folded) {
    EXPECT_EQ(chain.channels, 8);
    EXPECT_EQ(chain.clamped_bias_elements, 0u);
    EXPECT_FALSE(chain.copied_bias);
    EXPECT_GT(chain.risk.relative_shift, 0.0);
  }
  EXPECT_EQ(f.report.folded[0].module_path, "conv1");
  f.graph->lint();
}

TEST(FoldPipeline, FoldsTheCoreAtenForm) {
  Folded f = foldFixture("qat_cadence_cnn_decomposed.pt2");
  EXPECT_EQ(f.report.folded.size(), 2u);
  EXPECT_EQ(f.count("torch.ops.aten._native_batch_norm_legit_no_training.default"), 0u);
  EXPECT_EQ(f.count("torch.ops.aten.convolution.default"), 2u);
}

TEST(FoldPipeline, WrittenArchiveHoldsTheNewBiases) {
  Folded f = foldFixture("qat_cadence_cnn.pt2");
  StringSink sink;
  writeProgram(*f.archive, *f.graph, sink);
  auto archive = Archive::fromBytes(sink.bytes());
  auto program = Program::load(*archive);
  graph::Graph reread(*program);
  // The original, as it was read: conv2d has no bias, conv2d_1 an int32 one.
  LoadedProgram original = LoadedProgram::open(fixturePath("qat_cadence_cnn.pt2"));
  EXPECT_EQ(original.graph->getValue("conv2d")->producer()->tryGetInput("bias"), nullptr);
  const auto original_bias = original.graph->getValue("conv2d_1")
                                 ->producer()
                                 ->getInput("bias")
                                 ->producer()
                                 ->getInput("input")
                                 ->payload()
                                 ->view()
                                 .values<std::int32_t>();
  for (const char* conv : {"conv2d", "conv2d_1"}) {
    graph::Value* bias = reread.getValue(conv)->producer()->getInput("bias")->producer()->getInput("input");
    const auto written = bias->payload()->view().values<std::int32_t>();
    EXPECT_EQ(written, f.graph->getValue(conv)
                           ->producer()
                           ->getInput("bias")
                           ->producer()
                           ->getInput("input")
                           ->payload()
                           ->view()
                           .values<std::int32_t>());
    ASSERT_EQ(written.size(), 8u) << conv;
    // The folded shift C is in the written bias: not the original's, not zeros.
    EXPECT_NE(written, std::string(conv) == "conv2d_1" ? original_bias : std::vector<std::int32_t>(8, 0)) << conv;
  }
  reread.lint();
}

TEST(FoldPipeline, NoFoldPlainBatchNormSaysWhy) {
  Folded f = foldFixture("float_cnn.pt2");
  EXPECT_TRUE(f.report.folded.empty());
  ASSERT_EQ(f.report.skipped.size(), 1u);
  EXPECT_FALSE(f.report.skipped[0].qatChain());
  EXPECT_EQ(f.report.skipped[0].code(), "not-quantized");
  EXPECT_NE(f.report.skipped[0].reason().find("the program is not quantized"), std::string::npos);
  EXPECT_TRUE(f.report.prepared_biases.empty());  // float convs keep their float biases
}

TEST(FoldPipeline, FlagsConvsAboveTheRiskThreshold) {
  LoadedProgram loaded = testing::loadFixture("qat_cadence_cnn.pt2");
  graph::Graph& graph = *loaded.graph;
  FoldOptions no_threshold;
  no_threshold.risk_threshold = 0.0;
  FoldReport report = runFoldPipeline(graph, no_threshold);
  EXPECT_EQ(report.flaggedCount(), 2u);
  EXPECT_NE(qatfold::report::foldReportText(report, false).find("may clip"), std::string::npos);
  Json json = qatfold::report::foldReportJson(report);
  EXPECT_EQ(json["flagged_count"], 2);
  EXPECT_EQ(json["folded"][0]["flagged"], true);
}

TEST(QuantizeConvBias, LeavesFloatProgramsAlone) {
  Folded f = foldFixture("buffers.pt2");
  EXPECT_TRUE(f.report.prepared_biases.empty());
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
  auto input_dq = quant::readAffine(graph.getValue("conv2d")->producer()->getInput("input")->producer());
  auto weight_dq = quant::readAffine(graph.getValue("conv2d")->producer()->getInput("weight")->producer());
  EXPECT_EQ(m.scale, input_dq->scale * weight_dq->scale);
  pass.rewrite(graph, m);
  graph.lint();
  graph::Node* bias_dq = graph.getValue("conv2d")->producer()->getInput("bias")->producer();
  EXPECT_EQ(quant::opOf(*bias_dq), quant::Op::kDequantizePerTensor);
  EXPECT_EQ(bias_dq->getInput("input")->payload()->view().values<std::int32_t>(), m.values);
  EXPECT_EQ(bias_dq->getInput("input")->inputKind(), program::InputKind::kParameter);
}

}  // namespace
}  // namespace qatfold::passes
