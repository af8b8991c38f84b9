#include "qatfold/passes/fold_report.h"

#include <algorithm>

#include "qatfold/passes/patterns.h"

namespace qatfold::passes {

std::string FoldedConv::kind() const { return opKind(conv_target); }

void FoldReport::recordFolded(FoldedConv chain) {
  std::erase_if(skipped, [&](const SkippedBatchNorm& s) { return s.batch_norm == chain.batch_norm; });
  if (!chain.prepared_bias.empty()) prepared_biases.push_back({chain.conv, chain.prepared_bias});
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
  for (const FoldedConv& chain : folded) total += chain.clamped_bias_elements;
  return total;
}

std::size_t FoldReport::chainsFound() const {
  return folded.size() + static_cast<std::size_t>(
                             std::count_if(skipped.begin(), skipped.end(), [](const auto& s) { return s.qatChain(); }));
}

std::size_t FoldReport::flaggedCount() const {
  return static_cast<std::size_t>(std::count_if(folded.begin(), folded.end(), [](const auto& c) { return c.flagged; }));
}

std::vector<const SkippedBatchNorm*> FoldReport::strictFailures() const {
  std::vector<const SkippedBatchNorm*> failures;
  for (const SkippedBatchNorm& s : skipped) {
    if (quantized_program || s.refusal.code == RefusalCode::kTrainingMode) failures.push_back(&s);
  }
  return failures;
}

void describeFold(FoldedConv& report, const graph::Node& conv, const graph::Node& batch_norm, std::int64_t channels) {
  report.conv = conv.name();
  report.conv_target = conv.target();
  report.module_path = modulePath(conv);
  report.batch_norm = batch_norm.name();
  report.channels = channels;
}

}  // namespace qatfold::passes
