#include "qatfold/passes/requantize_pair.h"

#include <cstdio>
#include <string>

#include "qatfold/passes/patterns.h"

namespace qatfold::passes {
namespace {

std::string parameters(const quant::AffineQuantization& q) {
  char text[64];
  std::snprintf(text, sizeof text, "scale %.7g, zero point %lld", q.scale, static_cast<long long>(q.zero_point));
  return text;
}

}  // namespace

std::optional<std::variant<LookedThrough, Refusal>> lookThroughRequantizePair(graph::Value& read,
                                                                              const graph::Node& reader) {
  // dq2(q2(dq1(...))): a quantize of a dequantize, both per tensor.
  const auto dq2 = quant::readAffine(read.producer());
  if (!dq2 || dq2->op != quant::Op::kDequantizePerTensor || dq2->input == nullptr) return std::nullopt;
  const auto q2 = quant::readAffine(dq2->input->producer());
  if (!q2 || q2->op != quant::Op::kQuantizePerTensor || q2->input == nullptr) return std::nullopt;
  const auto dq1 = quant::readAffine(q2->input->producer());
  if (!dq1 || dq1->op != quant::Op::kDequantizePerTensor || !quant::sameParameters(*q2, *dq2)) return std::nullopt;

  for (auto [value, value_reader] :
       {std::pair<const graph::Value*, const graph::Node*>{q2->node->output(), dq2->node}, {&read, &reader}}) {
    if (auto use = outsideUse(*value, {value_reader}))
      return chainFailure(RefusalCode::kRequantizedOutputShared, {q2->node->name(), *use});
  }
  LookedThrough passed{q2->input, q2->node, ""};
  passed.description = quant::sameParameters(*dq1, *q2)
                           ? "a second quantize/dequantize with the same parameters (" + parameters(*q2) + "): a no-op"
                           : "a second quantize/dequantize re-quantizing from " + parameters(*dq1) + " to " +
                                 parameters(*q2) + ": both replaced by the folded output's quantization";
  return passed;
}

}  // namespace qatfold::passes
