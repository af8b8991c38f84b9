#include "qatfold/passes/batch_norm_tail.h"

#include <cmath>
#include <optional>
#include <span>

#include "qatfold/numerics/bias_fold.h"
#include "qatfold/passes/patterns.h"
#include "qatfold/program/payload.h"

namespace qatfold::passes {
namespace {

using program::ScalarType;

// The float32 elements of a constant with `channels` elements, read
// directly or through its dequantize (constantFloats), or why not.
std::variant<std::vector<float>, Refusal> constantChannels(const graph::Value* value, std::int64_t channels,
                                                           const char* what) {
  std::optional<ConstantFloats> constant = constantFloats(value);
  if (!constant) {
    if (!isConstantTensor(value)) return chainFailure(RefusalCode::kParameterNotConstant, {what});
    return chainFailure(RefusalCode::kParameterDtype,
                        {what, program::scalarTypeName(value->payload()->view().meta().dtype)});
  }
  if (static_cast<std::int64_t>(constant->values.size()) != channels) {
    return chainFailure(RefusalCode::kParameterLength,
                        {what, std::to_string(constant->values.size()), std::to_string(channels)});
  }
  return std::move(constant->values);
}

// A reshape/view to [1, C or -1, 1, ...] of `rank` dims: a per-channel broadcast.
bool isChannelBroadcast(const graph::Node& reshape, std::size_t rank, std::int64_t channels) {
  const program::Argument* shape = reshape.tryGetArgument(reshape.target() == op::kView ? "size" : "shape");
  auto dims = shape ? shape->asInts() : std::nullopt;
  if (!dims || dims->size() != rank || rank < 2) return false;
  for (std::size_t i = 0; i < dims->size(); ++i) {
    if (i == 1 ? ((*dims)[i] != -1 && (*dims)[i] != channels) : (*dims)[i] != 1) return false;
  }
  return true;
}

}  // namespace

std::vector<graph::Node*> BatchNormTail::nodes() const {
  std::vector<graph::Node*> order = {batch_norm};
  if (add_orig_bias != nullptr) order.push_back(add_orig_bias);
  order.push_back(div);
  return order;
}

std::optional<std::string> BatchNormTail::outsideUse() const {
  struct Exclusive {
    const graph::Value* value;
    std::vector<const graph::Node*> readers;
  };
  // Only the data path must be private to the chain; the scale and
  // orig_bias computations may feed others too (torchao's transposed-conv
  // chain scales the weight with the same bn_w / sqrt(var + eps)), and are
  // left to dead-code elimination once the chain is gone.
  std::vector<Exclusive> exclusive = {{div->output(), {add_orig_bias ? add_orig_bias : batch_norm}}};
  if (add_orig_bias != nullptr) exclusive.push_back({add_orig_bias->output(), {batch_norm}});
  for (const Exclusive& entry : exclusive) {
    if (auto use = passes::outsideUse(*entry.value, entry.readers)) return *use;
  }
  return std::nullopt;
}

std::variant<EvalBatchNorm, Refusal> matchEvalBatchNorm(graph::Node& bn) {
  if (bn.outputs().empty()) return plainRefusal(RefusalCode::kNoOutput);
  if (bn.target() == op::kBatchNorm) {
    const program::Argument* training = bn.tryGetArgument("training");
    if (training == nullptr || training->asBool() != false) return plainRefusal(RefusalCode::kTrainingMode);
  } else {
    if (bn.outputs().size() != 3) return plainRefusal(RefusalCode::kUnexpectedOutputs);
    for (std::size_t i = 1; i < 3; ++i) {
      if (bn.output(i)->useCount() != 0) return plainRefusal(RefusalCode::kStatisticsUsed, {bn.output(i)->name()});
    }
  }
  EvalBatchNorm e;
  e.node = &bn;
  const program::Argument* eps_argument = bn.tryGetArgument("eps");
  auto eps = eps_argument ? eps_argument->asFloat() : std::nullopt;
  if (!eps) return plainRefusal(RefusalCode::kEpsNotConstant);
  e.eps = *eps;
  e.input = bn.tryGetInput("input");
  e.weight = bn.tryGetInput("weight");
  e.bias = bn.tryGetInput("bias");
  e.mean = bn.tryGetInput("running_mean");
  e.var = bn.tryGetInput("running_var");
  if (e.input == nullptr || e.input->producer() == nullptr) return plainRefusal(RefusalCode::kInputNotComputed);
  return e;
}

std::variant<BatchNormValues, Refusal> readBatchNormValues(const EvalBatchNorm& bn, std::int64_t channels,
                                                           double other_eps) {
  auto weight = constantChannels(bn.weight, channels, "batch_norm weight");
  auto bias = constantChannels(bn.bias, channels, "batch_norm bias");
  auto mean = constantChannels(bn.mean, channels, "running_mean");
  auto var = constantChannels(bn.var, channels, "running_var");
  for (const auto* tensor : {&weight, &bias, &mean, &var}) {
    if (const auto* why = std::get_if<Refusal>(tensor)) return *why;
  }
  BatchNormValues values{std::get<std::vector<float>>(std::move(weight)), std::get<std::vector<float>>(std::move(bias)),
                         std::get<std::vector<float>>(std::move(mean)), std::get<std::vector<float>>(std::move(var)),
                         static_cast<float>(bn.eps)};
  const float smallest_eps = std::min(values.eps, static_cast<float>(other_eps));
  for (std::size_t c = 0; c < values.var.size(); ++c) {
    // An infinite variance makes the un-folded program compute inf/inf; only
    // a positive finite one gives numbers a fold can reproduce.
    const float var_eps = values.var[c] + smallest_eps;
    if (!(var_eps > 0.0f) || !std::isfinite(var_eps)) {
      return chainFailure(RefusalCode::kVarianceNotPositive, {formatFloatLikePython(var_eps), std::to_string(c)});
    }
  }
  return values;
}

std::variant<BatchNormTail, Refusal> matchBatchNormTail(graph::Node& bn) {
  auto eval_or_why = matchEvalBatchNorm(bn);
  if (const auto* why = std::get_if<Refusal>(&eval_or_why)) return *why;
  const EvalBatchNorm& eval = std::get<EvalBatchNorm>(eval_or_why);
  BatchNormTail t;
  t.batch_norm = &bn;
  t.eps = eval.eps;
  graph::Value* bn_input = eval.input;
  t.bn_weight = eval.weight;
  t.bn_bias = eval.bias;
  t.bn_mean = eval.mean;
  t.bn_var = eval.var;

  // Optional add(div, reshape(orig_bias)), then div(y, reshape(scale)).
  t.add_orig_bias = producerWith(bn_input, op::kAdd);
  if (t.add_orig_bias != nullptr) {
    graph::Value* lhs = t.add_orig_bias->tryGetInput("self");
    graph::Value* rhs = t.add_orig_bias->tryGetInput("other");
    t.div = producerWith(lhs, op::kDiv);
    t.reshape_orig_bias = rhs ? rhs->producer() : nullptr;
    if (t.div == nullptr) {  // add is commutative: accept add(reshape(b), div)
      t.div = producerWith(rhs, op::kDiv);
      t.reshape_orig_bias = lhs ? lhs->producer() : nullptr;
    }
    if (t.div == nullptr) return plainRefusal(RefusalCode::kAddWithoutDiv);
    const program::Argument* alpha = t.add_orig_bias->tryGetArgument("alpha");
    if (alpha != nullptr && alpha->asFloat() != 1.0) return chainFailure(RefusalCode::kOrigBiasAlpha);
    if (t.reshape_orig_bias == nullptr || !isReshape(*t.reshape_orig_bias)) {
      return chainFailure(RefusalCode::kOrigBiasNotReshape);
    }
  } else {
    t.div = producerWith(bn_input, op::kDiv);
    if (t.div == nullptr) {
      return plainRefusal(RefusalCode::kNotAChain, {bn_input->producer()->name(), bn_input->producer()->target()});
    }
  }
  t.divided = t.div->tryGetInput("self");
  t.reshape_scale = t.div->tryGetInput("other") ? t.div->tryGetInput("other")->producer() : nullptr;
  if (t.divided == nullptr) return chainFailure(RefusalCode::kNothingDivided);

  // The scale chain must be this BN's own: div(bn_w, sqrt(add(bn_var, eps))).
  if (t.reshape_scale == nullptr || !isReshape(*t.reshape_scale)) return chainFailure(RefusalCode::kDivisorNotReshape);
  t.scale = producerWith(t.reshape_scale->tryGetInput("self"), op::kDiv);
  t.sqrt = t.scale ? producerWith(t.scale->tryGetInput("other"), op::kSqrt) : nullptr;
  t.add_eps = t.sqrt ? producerWith(t.sqrt->tryGetInput("self"), op::kAdd) : nullptr;
  if (t.add_eps == nullptr) return chainFailure(RefusalCode::kDivisorNotScale);
  // Built from this BN's own weight and running_var, or from other tensors
  // (the float ones, where the BN reads dequantized copies): the data step
  // reads both and folds what is left, y * r.
  t.divisor_weight = t.scale->tryGetInput("self");
  t.divisor_var = t.add_eps->tryGetInput("self");
  if (t.divisor_weight == nullptr || t.divisor_var == nullptr) return chainFailure(RefusalCode::kDivisorNotScale);
  const program::Argument* chain_eps_argument = t.add_eps->tryGetArgument("other");
  auto chain_eps = chain_eps_argument ? chain_eps_argument->asFloat() : std::nullopt;
  if (!chain_eps) return chainFailure(RefusalCode::kChainEpsNotConstant);
  t.chain_eps = *chain_eps;
  if (auto use = t.outsideUse()) return chainFailure(RefusalCode::kUsedOutsideChain, {*use});
  return t;
}

std::variant<TailNumbers, Refusal> batchNormNumbers(const BatchNormTail& t, std::int64_t channels, std::size_t rank) {
  if (!isChannelBroadcast(*t.reshape_scale, rank, channels)) {
    return chainFailure(RefusalCode::kDivisorNotPerChannel);
  }
  if (t.reshape_orig_bias != nullptr && !isChannelBroadcast(*t.reshape_orig_bias, rank, channels)) {
    return chainFailure(RefusalCode::kOrigBiasNotPerChannel);
  }
  EvalBatchNorm eval{t.batch_norm, nullptr, t.bn_weight, t.bn_bias, t.bn_mean, t.bn_var, t.eps};
  auto values_or_why = readBatchNormValues(eval, channels, t.chain_eps);
  if (const auto* why = std::get_if<Refusal>(&values_or_why)) return *why;
  const BatchNormValues& values = std::get<BatchNormValues>(values_or_why);
  std::optional<std::vector<float>> orig_bias;
  if (t.reshape_orig_bias != nullptr) {
    auto values = constantChannels(t.reshape_orig_bias->tryGetInput("self"), channels, "orig_bias");
    if (const auto* why = std::get_if<Refusal>(&values)) return *why;
    orig_bias = std::get<std::vector<float>>(std::move(values));
  }
  const numerics::BatchNormParameters parameters = values.parameters();
  std::vector<float> shift = numerics::batchNormShift(
      parameters, orig_bias ? std::optional<std::span<const float>>(*orig_bias) : std::nullopt);
  for (float value : shift) {
    if (!std::isfinite(value)) return chainFailure(RefusalCode::kNonFiniteShift);
  }
  TailNumbers numbers;
  numbers.shift = std::move(shift);
  const auto chain_eps = static_cast<float>(t.chain_eps);
  if (!t.ownDivisor()) {
    auto weight = constantChannels(t.divisor_weight, channels, "the divisor's batch_norm weight");
    if (const auto* why = std::get_if<Refusal>(&weight)) return *why;
    auto var = constantChannels(t.divisor_var, channels, "the divisor's running_var");
    if (const auto* why = std::get_if<Refusal>(&var)) return *why;
    const auto& w = std::get<std::vector<float>>(weight);
    const auto& v = std::get<std::vector<float>>(var);
    // Equal values (a dequantized copy that rounds back exactly, the same
    // tensor twice) leave nothing to fold but the eps.
    if (w == values.weight && v == values.var) {
      if (t.chain_eps != t.eps)
        numbers.factor = numerics::epsMismatchFactor(parameters.running_var, chain_eps, parameters.eps);
    } else {
      numbers.factor = numerics::divisorFactor(parameters, w, v, chain_eps);
      numbers.factor_from_parameters = true;
    }
  } else if (t.chain_eps != t.eps) {
    numbers.factor = numerics::epsMismatchFactor(parameters.running_var, chain_eps, parameters.eps);
  }
  if (numbers.factor) {
    for (std::size_t c = 0; c < numbers.factor->size(); ++c) {
      const float r = (*numbers.factor)[c];
      if (!std::isfinite(r) || !(r > 0.0f)) {
        return chainFailure(RefusalCode::kNonFiniteEpsFactor, {formatFloatLikePython(r), std::to_string(c)});
      }
    }
  }
  return numbers;
}

}  // namespace qatfold::passes
