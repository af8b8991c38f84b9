// The fold report rendered: JSON for programs (`qatfold fold --json`, the
// Python FoldReport), text for people. The outcomes themselves are
// passes/fold_report.h.
#pragma once

#include <string>

#include "qatfold/passes/fold_options.h"
#include "qatfold/passes/fold_report.h"
#include "qatfold/program/json.h"

namespace qatfold::report {

Json foldReportJson(const passes::FoldReport& report);

// A short summary; `explain` adds every batch_norm left, chain or not.
// Options are named as the front end spells them.
std::string foldReportText(const passes::FoldReport& report, bool explain,
                           passes::OptionStyle style = passes::OptionStyle::kPython);

// The keys of each object foldReportJson writes, in order, by the name the
// Python mirror gives it: {"FoldReport": [...], "FoldedConv": [...],
// "SkippedBatchNorm": [...], "PreparedBias": [...], "strict_failures": [...],
// "bias_preparation": [...]}. Taken from a rendered report, so it cannot
// drift from what is written; the Python dataclasses are tested against it.
Json foldReportFields();

}  // namespace qatfold::report
