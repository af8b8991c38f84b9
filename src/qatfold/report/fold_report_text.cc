// The fold report as text (`qatfold fold`, FoldReport.text).
#include <algorithm>
#include <cstdio>
#include <sstream>

#include "qatfold/passes/patterns.h"
#include "qatfold/report/fold_report.h"

namespace qatfold::report {

using passes::FoldedConv;
using passes::FoldReport;
using passes::OptionStyle;
using passes::SkippedBatchNorm;

std::string foldReportText(const FoldReport& report, bool explain, OptionStyle style) {
  std::ostringstream out;
  out << "chains found " << report.chainsFound() << ", folded " << report.folded.size() << ", skipped "
      << (report.chainsFound() - report.folded.size()) << "; int32 bias elements clamped " << report.clampedTotal()
      << "\n";
  out << "bias preparation: "
      << (report.bias_preparation.policy == "all"      ? "every conv with quantized input and weight"
          : report.bias_preparation.policy == "folded" ? "folded convs only"
                                                       : "none")
      << " (" << report.bias_preparation.requested << ": " << report.bias_preparation.reason << ")";
  if (!report.prepared_biases.empty())
    out << "; int32 biases prepared: " << report.prepared_biases.size() << " conv(s)";
  out << "\n";
  for (const std::string& warning : report.warnings) out << "warning: " << warning << "\n";
  if (!report.changed) out << "nothing to change: the program is left as it is\n";
  if (!report.folded.empty()) {
    // Highest risk first: that is where a user should look.
    std::vector<const FoldedConv*> order;
    for (const FoldedConv& c : report.folded) order.push_back(&c);
    std::stable_sort(order.begin(), order.end(),
                     [](const auto* a, const auto* b) { return a->risk.relative_shift > b->risk.relative_shift; });
    std::vector<std::string> convs;
    std::size_t conv_width = 4;
    std::size_t bn_width = 10;
    std::size_t kind_width = 4;
    for (const FoldedConv* c : order) {
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
      const FoldedConv* c = order[i];
      char risk[32] = "          -";
      if (c->output_quantized) std::snprintf(risk, sizeof risk, "%10.1f%%", 100.0 * c->risk.relative_shift);
      std::snprintf(line, sizeof line, "  %-*s  %-*s  %-*s  %5s  %8lld  %7zu  %s%s\n", static_cast<int>(conv_width),
                    convs[i].c_str(), static_cast<int>(kind_width), c->kind().c_str(), static_cast<int>(bn_width),
                    c->batch_norm.c_str(), c->float_bias ? "float" : "int32", static_cast<long long>(c->channels),
                    c->clamped_bias_elements, risk,
                    c->flagged          ? "  <- estimate: output may clip"
                    : c->widened_output ? "  <- output range widened"
                                        : "");
      out << line;
    }
    if (report.flaggedCount() > 0) {
      char note[256];
      std::snprintf(note, sizeof note,
                    "%zu conv(s) shift their output by more than %.0f%% of the range their output quantization was "
                    "calibrated for; values may clip on device. An estimate: measure it on real inputs with "
                    "`python -m qatfold verify` or qatfold.fold(verify=...).\n",
                    report.flaggedCount(), 100.0 * report.risk_threshold);
      out << note;
    }
  }
  for (const FoldedConv& c : report.folded) {
    if (!c.widened_output) continue;
    const numerics::AffineRange& w = *c.widened_output;
    char note[512];
    std::snprintf(note, sizeof note,
                  "  widened output range: %s: [%.6g, %.6g] -> [%.6g, %.6g], scale %.6g, zero point %lld\n",
                  c.conv.c_str(), c.risk.range_low, c.risk.range_high, w.low(), w.high(), w.scale,
                  static_cast<long long>(w.zero_point));
    out << note;
  }
  for (const FoldedConv& c : report.folded) {
    if (!c.requantized) continue;
    const FoldedConv::Requantized& r = *c.requantized;
    char note[512];
    std::snprintf(
        note, sizeof note,
        "  output quantization: %s: %s, [%.6g, %.6g] -> [%.6g, %.6g], scale %.6g, zero point %lld%s\n", c.conv.c_str(),
        r.source.c_str(), r.before.low(), r.before.high(), r.after.low(), r.after.high(), r.after.scale,
        static_cast<long long>(r.after.zero_point),
        r.negated_channels == 0 ? "" : ("; " + std::to_string(r.negated_channels) + " channel(s) negated").c_str());
    out << note;
    for (const std::string& seen : r.looked_through) out << "  looked through: " << c.conv << ": " << seen << "\n";
    if (!r.weight_error) continue;
    std::snprintf(note, sizeof note,
                  "  re-quantized per-tensor weights: %s: max error %.3g%% of the largest folded weight, "
                  "%.3g%% of channel %zu's own largest\n",
                  c.conv.c_str(), 100.0 * r.weight_error->overall, 100.0 * r.weight_error->worst_channel,
                  r.weight_error->channel);
    out << note;
  }
  for (const FoldedConv& c : report.folded) {
    if (!c.eps_mismatch) continue;
    const auto& e = *c.eps_mismatch;
    char note[512];
    const std::string cause = e.dequantized_parameters
                                  ? std::string("batch_norm reads dequantized parameters")
                                  : "chain eps " + formatFloatLikePython(e.chain_eps) + " vs batch_norm eps " +
                                        formatFloatLikePython(e.batch_norm_eps);
    std::snprintf(note, sizeof note, "  %s: %s: %s, factor r in [%.6g, %.6g], %s\n",
                  e.dequantized_parameters ? "divisor factor" : "eps mismatch", c.conv.c_str(), cause.c_str(),
                  e.factor_min, e.factor_max,
                  e.in_weight_scales      ? "folded into the per-channel weight and bias scales"
                  : e.requantized_weights ? "the per-tensor weights re-quantized with it"
                                          : ("ignored (within " + optionName("eps_tolerance", style) + ")").c_str());
    out << note;
    if (!e.requantized_weights) continue;
    std::snprintf(note, sizeof note,
                  "  re-quantized per-tensor weights: %s: max error %.3g%% of the largest folded weight, "
                  "%.3g%% of channel %zu's own largest\n",
                  c.conv.c_str(), 100.0 * e.requantized_weights->overall, 100.0 * e.requantized_weights->worst_channel,
                  e.requantized_weights->channel);
    out << note;
  }
  for (const SkippedBatchNorm& s : report.skipped) {
    if (!s.qatChain() && !explain) continue;
    std::string name = s.module_path.empty() ? s.batch_norm : s.batch_norm + " (" + s.module_path + ")";
    out << "  not folded: " << name << ": " << s.reason();
    if (!s.refusal.info().option.empty()) out << " (" << optionAdvice(s.refusal.info(), style) << ")";
    out << "\n";
  }
  return out.str();
}

}  // namespace qatfold::report
