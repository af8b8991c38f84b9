#include "qatfold/passes/fold_report.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "qatfold/passes/patterns.h"

namespace qatfold::passes {

namespace {

Json epsMismatchJson(const FoldedChain& c) {
  if (!c.eps_mismatch) return nullptr;
  const auto& e = *c.eps_mismatch;
  return Json{{"chain_eps", floatToJson(e.chain_eps)},
              {"batch_norm_eps", floatToJson(e.batch_norm_eps)},
              {"factor_min", floatToJson(e.factor_min)},
              {"factor_max", floatToJson(e.factor_max)},
              {"handling", e.in_weight_scales ? "folded into the per-channel weight and bias scales"
                                              : "ignored: within the eps tolerance"}};
}

Json rangeJson(const numerics::AffineRange& r) {
  return Json{{"scale", floatToJson(r.scale)},
              {"zero_point", r.zero_point},
              {"range", Json::array({floatToJson(r.low()), floatToJson(r.high())})}};
}

Json widenedJson(const FoldedChain& c) { return c.widened_output ? rangeJson(*c.widened_output) : Json(nullptr); }

Json requantizedJson(const FoldedChain& c) {
  if (!c.requantized) return nullptr;
  const FoldedChain::Requantized& r = *c.requantized;
  const auto& e = r.weight_error;
  return Json{{"source", r.source},
              {"before", rangeJson(r.before)},
              {"after", rangeJson(r.after)},
              {"negated_channels", r.negated_channels},
              {"weight_error", e ? floatToJson(e->overall) : Json(nullptr)},
              {"channel_weight_error", e ? floatToJson(e->worst_channel) : Json(nullptr)},
              {"worst_weight_channel", e ? Json(e->channel) : Json(nullptr)}};
}

}  // namespace

std::string FoldedChain::kind() const { return opKind(conv_target); }

void FoldReport::recordFolded(FoldedChain chain) {
  std::erase_if(skipped, [&](const SkippedBatchNorm& s) { return s.batch_norm == chain.batch_norm; });
  if (!chain.prepared_bias.empty()) prepared.push_back({chain.conv, chain.prepared_bias});
  folded.push_back(std::move(chain));
}

void FoldReport::refuse(const std::string& batch_norm, const std::string& module_path, Refusal refusal) {
  for (SkippedBatchNorm& s : skipped) {
    if (s.batch_norm != batch_norm) continue;
    const bool qat_chain = refusal.qat_chain || s.refusal.qat_chain;
    if (refusal.stage > s.refusal.stage) s.refusal = std::move(refusal);
    s.refusal.qat_chain = qat_chain;
    return;
  }
  skipped.push_back({batch_norm, module_path, std::move(refusal)});
}

std::size_t FoldReport::clampedTotal() const {
  std::size_t total = 0;
  for (const FoldedChain& chain : folded) total += chain.clamped;
  return total;
}

std::size_t FoldReport::flaggedCount() const {
  return static_cast<std::size_t>(std::count_if(folded.begin(), folded.end(), [](const auto& c) { return c.flagged; }));
}

Json FoldReport::toJson() const {
  Json json = Json::object();
  std::size_t chains = folded.size() + static_cast<std::size_t>(std::count_if(
                                           skipped.begin(), skipped.end(), [](const auto& s) { return s.qatChain(); }));
  json["chains_found"] = chains;
  json["folded_count"] = folded.size();
  json["skipped_count"] = skipped.size();
  json["clamped_bias_elements"] = clampedTotal();
  json["risk_threshold"] = risk_threshold;
  json["flagged_count"] = flaggedCount();
  json["removed_nodes"] = removed_nodes;
  json["removed_constants"] = removed_constants;
  json["changed"] = changed;
  json["quantized_program"] = quantized_program;
  json["warnings"] = warnings;
  Json strict_json = Json::array();
  for (const SkippedBatchNorm* s : strictFailures()) {
    strict_json.push_back(Json{
        {"batch_norm", s->batch_norm}, {"module_path", s->module_path}, {"code", s->code()}, {"reason", s->reason()}});
  }
  json["strict_failures"] = std::move(strict_json);
  json["strict_failed"] = strictFailed();
  json["bias_preparation"] = Json{{"policy", bias_preparation.policy},
                                  {"requested", bias_preparation.requested},
                                  {"reason", bias_preparation.reason}};
  Json prepared_json = Json::array();
  for (const PreparedBias& p : prepared) prepared_json.push_back(Json{{"conv", p.conv}, {"action", p.action}});
  json["prepared_biases"] = std::move(prepared_json);
  Json folded_json = Json::array();
  for (const FoldedChain& c : folded) {
    const Json range = !c.output_quantized
                           ? Json(nullptr)
                           : Json::array({floatToJson(c.risk.range_low), floatToJson(c.risk.range_high)});
    folded_json.push_back(
        Json{{"conv", c.conv},
             {"conv_target", c.conv_target},
             {"kind", c.kind()},
             {"module_path", c.module_path},
             {"batch_norm", c.batch_norm},
             {"folded_by", c.folded_by},
             {"channels", c.channels},
             {"bias_dtype", c.float_bias ? "float32" : "int32"},
             {"scaled_weights", c.scaled_weights},
             {"per_channel_bias", c.per_channel_bias},
             {"copied_bias", c.copied_bias},
             {"clamped_bias_elements", c.clamped},
             {"max_abs_shift", floatToJson(c.risk.max_abs_shift)},
             {"output_range", range},
             {"relative_shift", !c.output_quantized ? Json(nullptr) : floatToJson(c.risk.relative_shift)},
             {"flagged", c.flagged},
             {"widened_output", widenedJson(c)},
             {"eps_mismatch", epsMismatchJson(c)},
             {"requantized", requantizedJson(c)}});
  }
  json["folded"] = std::move(folded_json);
  Json skipped_json = Json::array();
  for (const SkippedBatchNorm& s : skipped) {
    const std::string_view option = s.refusal.info().option;
    skipped_json.push_back(Json{
        {"batch_norm", s.batch_norm},
        {"module_path", s.module_path},
        {"qat_chain", s.qatChain()},
        {"code", s.code()},
        {"reason", s.reason()},
        {"option", option.empty() ? Json(nullptr) : Json(option)},
        {"option_value", s.refusal.info().option_value.empty() ? Json(nullptr) : Json(s.refusal.info().option_value)}});
  }
  json["skipped"] = std::move(skipped_json);
  return json;
}

std::vector<const SkippedBatchNorm*> FoldReport::strictFailures() const {
  std::vector<const SkippedBatchNorm*> failures;
  for (const SkippedBatchNorm& s : skipped) {
    if (quantized_program || s.refusal.code == RefusalCode::kTrainingMode) failures.push_back(&s);
  }
  return failures;
}

std::string FoldReport::toText(bool explain, OptionStyle style) const {
  std::ostringstream out;
  const Json summary = toJson();
  out << "chains found " << summary["chains_found"].get<std::size_t>() << ", folded " << folded.size() << ", skipped "
      << (summary["chains_found"].get<std::size_t>() - folded.size()) << "; int32 bias elements clamped "
      << clampedTotal() << "\n";
  out << "bias preparation: "
      << (bias_preparation.policy == "all"      ? "every conv with quantized input and weight"
          : bias_preparation.policy == "folded" ? "folded convs only"
                                                : "none")
      << " (" << bias_preparation.requested << ": " << bias_preparation.reason << ")";
  if (!prepared.empty()) out << "; int32 biases prepared: " << prepared.size() << " conv(s)";
  out << "\n";
  for (const std::string& warning : warnings) out << "warning: " << warning << "\n";
  if (!changed) out << "nothing to change: the program is left as it is\n";
  if (!folded.empty()) {
    // Highest risk first: that is where a user should look.
    std::vector<const FoldedChain*> order;
    for (const FoldedChain& c : folded) order.push_back(&c);
    std::stable_sort(order.begin(), order.end(),
                     [](const auto* a, const auto* b) { return a->risk.relative_shift > b->risk.relative_shift; });
    std::vector<std::string> convs;
    std::size_t conv_width = 4;
    std::size_t bn_width = 10;
    std::size_t kind_width = 4;
    for (const FoldedChain* c : order) {
      convs.push_back(c->module_path.empty() ? c->conv : c->conv + " (" + c->module_path + ")");
      conv_width = std::max(conv_width, convs.back().size());
      bn_width = std::max(bn_width, c->batch_norm.size());
      kind_width = std::max(kind_width, c->kind().size());
    }
    char line[1024];
    std::snprintf(line, sizeof line, "  %-*s  %-*s  %-*s  %5s  %8s  %7s  %11s\n", static_cast<int>(conv_width), "conv",
                  static_cast<int>(kind_width), "kind", static_cast<int>(bn_width), "batch_norm", "bias", "channels",
                  "clamped", "shift/range");
    out << line;
    for (std::size_t i = 0; i < order.size(); ++i) {
      const FoldedChain* c = order[i];
      char risk[32] = "          -";
      if (c->output_quantized) std::snprintf(risk, sizeof risk, "%10.1f%%", 100.0 * c->risk.relative_shift);
      std::snprintf(line, sizeof line, "  %-*s  %-*s  %-*s  %5s  %8lld  %7zu  %s%s\n", static_cast<int>(conv_width),
                    convs[i].c_str(), static_cast<int>(kind_width), c->kind().c_str(), static_cast<int>(bn_width),
                    c->batch_norm.c_str(), c->float_bias ? "float" : "int32", static_cast<long long>(c->channels),
                    c->clamped, risk,
                    c->flagged          ? "  <- estimate: output may clip"
                    : c->widened_output ? "  <- output range widened"
                                        : "");
      out << line;
    }
    if (flaggedCount() > 0) {
      char note[256];
      std::snprintf(note, sizeof note,
                    "%zu conv(s) shift their output by more than %.0f%% of the range their output quantization was "
                    "calibrated for; values may clip on device. An estimate: measure it on real inputs with "
                    "`python -m qatfold verify` or qatfold.fold(verify=...).\n",
                    flaggedCount(), 100.0 * risk_threshold);
      out << note;
    }
  }
  for (const FoldedChain& c : folded) {
    if (!c.widened_output) continue;
    const numerics::AffineRange& w = *c.widened_output;
    char note[512];
    std::snprintf(note, sizeof note,
                  "  widened output range: %s: [%.6g, %.6g] -> [%.6g, %.6g], scale %.6g, zero point %lld\n",
                  c.conv.c_str(), c.risk.range_low, c.risk.range_high, w.low(), w.high(), w.scale,
                  static_cast<long long>(w.zero_point));
    out << note;
  }
  for (const FoldedChain& c : folded) {
    if (!c.requantized) continue;
    const FoldedChain::Requantized& r = *c.requantized;
    char note[512];
    std::snprintf(
        note, sizeof note,
        "  output quantization: %s: %s, [%.6g, %.6g] -> [%.6g, %.6g], scale %.6g, zero point %lld%s\n", c.conv.c_str(),
        r.source.c_str(), r.before.low(), r.before.high(), r.after.low(), r.after.high(), r.after.scale,
        static_cast<long long>(r.after.zero_point),
        r.negated_channels == 0 ? "" : ("; " + std::to_string(r.negated_channels) + " channel(s) negated").c_str());
    out << note;
    if (!r.weight_error) continue;
    std::snprintf(note, sizeof note,
                  "  re-quantized per-tensor weights: %s: max error %.3g%% of the largest folded weight, "
                  "%.3g%% of channel %zu's own largest\n",
                  c.conv.c_str(), 100.0 * r.weight_error->overall, 100.0 * r.weight_error->worst_channel,
                  r.weight_error->channel);
    out << note;
  }
  for (const FoldedChain& c : folded) {
    if (!c.eps_mismatch) continue;
    const auto& e = *c.eps_mismatch;
    char note[512];
    std::snprintf(note, sizeof note,
                  "  eps mismatch: %s: chain eps %s vs batch_norm eps %s, factor r in [%.6g, %.6g], %s\n",
                  c.conv.c_str(), formatFloatLikePython(e.chain_eps).c_str(),
                  formatFloatLikePython(e.batch_norm_eps).c_str(), e.factor_min, e.factor_max,
                  e.in_weight_scales ? "folded into the per-channel weight and bias scales"
                                     : ("ignored (within " + optionName("eps_tolerance", style) + ")").c_str());
    out << note;
  }
  for (const SkippedBatchNorm& s : skipped) {
    if (!s.qatChain() && !explain) continue;
    std::string name = s.module_path.empty() ? s.batch_norm : s.batch_norm + " (" + s.module_path + ")";
    out << "  not folded: " << name << ": " << s.reason();
    if (!s.refusal.info().option.empty()) out << " (" << optionAdvice(s.refusal.info(), style) << ")";
    out << "\n";
  }
  return out.str();
}

void describeFold(FoldedChain& report, const graph::Node& conv, const graph::Node& batch_norm, std::int64_t channels) {
  report.conv = conv.name();
  report.conv_target = conv.target();
  report.module_path = modulePath(conv);
  report.batch_norm = batch_norm.name();
  report.channels = channels;
}

}  // namespace qatfold::passes
