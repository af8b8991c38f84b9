// The quantization dialect (quant/dialect.h): which ops it knows, by target
// and by name, and what it reads of their parameters, on programs torch
// exported and on text graphs.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "qatfold/quant/dialect.h"
#include "test_support.h"

namespace qatfold::quant {
namespace {

TEST(Dialect, EveryOpReadsBackFromItsTargetAndNamesItself) {
  std::set<std::string_view> names, targets;
  for (const Op op : ops()) {
    EXPECT_EQ(opNamed(targetOf(op)), op);
    EXPECT_TRUE(inLibrary(targetOf(op)));
    EXPECT_NE(std::string(targetOf(op)).find("." + std::string(nameOf(op)) + ".default"), std::string::npos);
    EXPECT_NE(isQuantize(op), isDequantize(op));
    names.insert(nameOf(op));
    targets.insert(targetOf(op));
  }
  EXPECT_EQ(names.size(), 4u);
  EXPECT_EQ(targets.size(), 4u);
  EXPECT_EQ(opNamed("torch.ops.quantized_decomposed.quantize_per_tensor.tensor"), Op::kNone);
  EXPECT_EQ(opNamed("torch.ops.aten.conv2d.default"), Op::kNone);
  EXPECT_TRUE(inLibrary("torch.ops.quantized_decomposed.choose_qparams.tensor"));
  EXPECT_FALSE(inLibrary("torch.ops.aten.quantize_per_tensor.default"));
}

TEST(Dialect, ReadsTheParametersOfTheQuantizersPrograms) {
  std::size_t per_tensor = 0, per_channel = 0;
  for (const char* fixture : {"qat_cadence_cnn.pt2", "qat_xnnpack_cnn.pt2"}) {
    LoadedProgram loaded = LoadedProgram::open(testing::fixturePath(fixture));
    EXPECT_TRUE(holdsQuantization(*loaded.graph));
    for (graph::Node* node : loaded.graph->nodes()) {
      const Op op = opOf(*node);
      const auto read = readAffine(node);
      if (op == Op::kNone) {
        EXPECT_FALSE(read) << node->name();
        continue;
      }
      ASSERT_TRUE(read) << node->name();
      EXPECT_EQ(read->op, op);
      EXPECT_EQ(read->per_channel, isPerChannel(op));
      if (read->per_channel) {
        ++per_channel;
        EXPECT_NE(read->scales, nullptr);
      } else {
        ++per_tensor;
        EXPECT_GT(read->scale, 0.0);
      }
      EXPECT_LT(read->quant_min, read->quant_max);
    }
  }
  EXPECT_GT(per_tensor, 0u);
  EXPECT_GT(per_channel, 0u);  // XNNPACK's weights are dequantized per channel
}

TEST(Dialect, AFloatProgramHoldsNoQuantization) {
  LoadedProgram loaded = LoadedProgram::open(testing::fixturePath("float_cnn.pt2"));
  EXPECT_FALSE(holdsQuantization(*loaded.graph));
}

}  // namespace
}  // namespace qatfold::quant
