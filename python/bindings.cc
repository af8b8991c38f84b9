// qatfold._core: the C++ fold, on archive bytes, for the Python layer.
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>

#include "qatfold/error.h"
#include "qatfold/fold.h"
#include "qatfold/passes/bias_preparation.h"
#include "qatfold/passes/fold_qat_conv_bn.h"
#include "qatfold/version.h"

namespace nb = nanobind;

NB_MODULE(_core, m) {
  m.doc() = "qatfold's C++ core: folds QAT Conv+BatchNorm chains of PT2 archives held in memory.";
  m.attr("__version__") = qatfold::kVersion;
  m.attr("DEFAULT_RISK_THRESHOLD") = qatfold::passes::kDefaultRiskThreshold;
  m.attr("DEFAULT_EPS_TOLERANCE") = qatfold::passes::kDefaultEpsTolerance;
  static nb::exception<qatfold::Error> error(m, "QatfoldError", PyExc_ValueError);

  m.def(
      "fold_archive",
      [](nb::bytes data, double risk_threshold, bool dry_run, bool explain, double eps_tolerance,
         const std::string& bias_preparation) {
        auto policy = qatfold::passes::parseBiasPreparation(bias_preparation);
        if (!policy) throw qatfold::Error("bias_preparation must be 'auto', 'all' or 'folded', not '" + bias_preparation + "'");
        std::string input(data.c_str(), data.size());
        qatfold::FoldedArchive result;
        {
          nb::gil_scoped_release release;  // the fold touches no Python objects
          result = qatfold::foldArchiveBytes(std::move(input), {risk_threshold, eps_tolerance, *policy}, dry_run);
        }
        return std::make_tuple(nb::bytes(result.archive.data(), result.archive.size()),
                               qatfold::dumpJson(result.report.toJson()), result.report.toText(explain));
      },
      nb::arg("data"), nb::arg("risk_threshold") = qatfold::passes::kDefaultRiskThreshold, nb::arg("dry_run") = false, nb::arg("explain") = false,
      nb::arg("eps_tolerance") = qatfold::passes::kDefaultEpsTolerance, nb::arg("bias_preparation") = "auto",
      "Folds the PT2 archive `data`; returns (folded archive bytes, report JSON, report text).");

  m.def(
      "inspect_archive",
      [](nb::bytes data) { return qatfold::dumpJson(qatfold::inspectArchiveBytes(std::string(data.c_str(), data.size()))); },
      nb::arg("data"), "The inspect report of the PT2 archive `data`, as JSON.");
}
