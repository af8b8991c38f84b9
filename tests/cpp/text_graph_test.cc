// The text form of the graph (graph/text.h): every committed program prints
// and reads back to the same text, and malformed text is refused with the
// line it is on.
#include <gtest/gtest.h>

#include <cstdint>

#include "qatfold/graph/text.h"
#include "test_support.h"
#include "text_graphs.h"

namespace qatfold::graph {
namespace {

TEST(TextGraph, EveryFixturePrintsAndReadsBackTheSame) {
  for (const std::string& fixture : testing::allFixtures()) {
    LoadedProgram loaded = testing::loadFixture(fixture);
    const std::string text = printGraph(*loaded.graph, SIZE_MAX);
    LoadedProgram reread = LoadedProgram::fromText(text);
    EXPECT_EQ(printGraph(*reread.graph, SIZE_MAX), text) << fixture;
    reread.graph->lint();
  }
}

TEST(TextGraph, ArgumentKindsSurviveTheRoundTrip) {
  const std::string text = R"(input %x: float32[2, 3]
input %y: float32[2, 3]
constant %c = "c": int32[2] = [-2147483648, 2147483647]
%s = aten.stack.default(tensors=[%x, %y], dim=0): float32[2, 2, 3]
%i = aten.index.Tensor(self=%x, indices=?[None, %c]): float32[2, 2]
%f = aten.full.default(size=[2, 3], fill_value=0.5, dtype=float32, layout=json{"as_layout": 0}, pin_memory=False): float32[2, 3]
%z = aten.clamp.default(self=%x, min=-1.0, max=None): float32[2, 3]
%t = aten.to.dtype(self=%x, dtype=int8, non_blocking=True, copy=False, memory_format=json{"as_memory_format": 0}): int8[2, 3]
%w = aten.where.ScalarOther(condition=%x, self=%y, other=1e-30): float32[2, 3]
%e = aten.einsum.default(equation="ij,\"ij\"", tensors=[%x, %y]): float32[2, 3]
%p = aten.upsample.vec(input=%x, output_size=None, scale_factors=[2.0, 0.5], flags=[True, False]): float32[?]
return %s, %i, %f, %z, %t, %w, %e, %p
)";
  LoadedProgram loaded = LoadedProgram::fromText(text);
  EXPECT_EQ(printGraph(*loaded.graph), text);
  const Node* full = loaded.graph->getValue("f")->producer();
  EXPECT_EQ(full->tryGetArgument("size")->tag(), "as_ints");
  EXPECT_EQ(full->tryGetArgument("fill_value")->tag(), "as_float");
  EXPECT_EQ(full->tryGetArgument("dtype")->tag(), "as_scalar_type");
  EXPECT_EQ(loaded.graph->getValue("i")->producer()->tryGetOperand("indices")->argument().tag(), "as_optional_tensors");
  EXPECT_TRUE(loaded.graph->getValue("p")->meta()->symbolic);
  EXPECT_EQ(loaded.graph->getValue("c")->payload()->view().values<std::int32_t>(),
            (std::vector<std::int32_t>{INT32_MIN, INT32_MAX}));
}

TEST(TextGraph, NodeNamesAndMultipleOutputs) {
  LoadedProgram loaded = LoadedProgram::fromText(testing::edited(
      testing::kQatChain,
      {{"%bn = aten.batch_norm.default(input=%biased, weight=%bn_w, bias=%bn_b, running_mean=%mean, running_var=%var, "
        "training=False, momentum=0.1, eps=1e-05, cudnn_enabled=False): float32[1, 2, 4, 4]",
        "%out, %m, %v = aten._native_batch_norm_legit_no_training.default(input=%biased, weight=%bn_w, bias=%bn_b, "
        "running_mean=%mean, running_var=%var, momentum=0.1, eps=1e-05): float32[1, 2, 4, 4], float32[0], float32[0] "
        "@bn"},
       {"return %bn", "return %out"}}));
  const Node* bn = loaded.graph->getValue("out")->producer();
  EXPECT_EQ(bn->name(), "bn");
  EXPECT_EQ(bn->outputs().size(), 3u);
  EXPECT_NE(printGraph(*loaded.graph).find("float32[0], float32[0] @bn\n"), std::string::npos);
}

TEST(TextGraph, MalformedTextNamesTheLine) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"input %x: float32[2]\n%y = aten.relu.default(self=%z): float32[2]\nreturn %y\n", "line 2: '%z' is not defined"},
      {"input %x: float33[2]\nreturn %x\n", "line 1: unknown dtype 'float33'"},
      {"input %x: float32[2]\ninput %x: float32[2]\nreturn %x\n", "line 2: value '%x' is defined twice"},
      {"input %x: float32[2]\n", "the graph has no 'return'"},
      {"input %x: float32[2]\nreturn %x\ninput %y: float32[2]\n", "line 3: nothing may follow 'return'"},
      {"parameter %w = \"w\": float32[2] = [1, 2, 3]\nreturn\n", "line 1: the data has 3 elements for a tensor of 2"},
      {"buffer %w = \"w\": int8[1] = [300]\nreturn\n", "line 1: element 300 does not fit int8"},
      {"input %x: float32[2]\n%y = aten.relu.default(self=%x\nreturn %y\n", "line 3: expected ')' after the arguments"},
      {"input %x: float32[2]\n%y = aten.cat.default(tensors=[], dim=0): float32[2]\nreturn %y\n",
       "line 2: write an empty list as json{...}: its kind is ambiguous"},
      {"frobnicate %x\n", "line 1: unknown statement 'frobnicate'"},
  };
  for (const auto& [text, expected] : cases) {
    try {
      (void)archiveFromText(text);
      ADD_FAILURE() << "accepted: " << text;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what() << "\nexpected: " << expected;
    }
  }
}

}  // namespace
}  // namespace qatfold::graph
