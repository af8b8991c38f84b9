// qatfold._core: the C++ fold, on archive bytes, for the Python layer.
#include <nanobind/nanobind.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include "qatfold/error.h"
#include "qatfold/fold.h"
#include "qatfold/passes/fold_options.h"
#include "qatfold/passes/refusal.h"
#include "qatfold/passes/registry.h"
#include "qatfold/version.h"

namespace nb = nanobind;

NB_MODULE(_core, m) {
  m.doc() = "qatfold's C++ core: folds QAT Conv+BatchNorm chains of PT2 archives held in memory.";
  m.attr("__version__") = qatfold::kVersion;
  m.attr("DEFAULT_RISK_THRESHOLD") = qatfold::passes::kDefaultRiskThreshold;
  m.attr("DEFAULT_EPS_TOLERANCE") = qatfold::passes::kDefaultEpsTolerance;
  static nb::exception<qatfold::Error> error(m, "QatfoldError", PyExc_ValueError);

  m.def(
      "fold_options",
      [] {
        const qatfold::passes::FoldOptions defaults;
        std::vector<std::map<std::string, std::string>> rows;
        for (const auto& info : qatfold::passes::kFoldOptions) {
          rows.push_back({{"python_name", std::string(info.python_name)},
                          {"cli_flag", std::string(info.cli_flag)},
                          {"help", std::string(info.help)},
                          {"default", qatfold::passes::foldOptionValue(defaults, info)}});
        }
        return rows;
      },
      "The fold pipeline's options (passes/fold_options.h): python_name, cli_flag, help, default.");
  m.def(
      "refusal_codes",
      [] {
        std::vector<std::map<std::string, std::string>> rows;
        for (const auto& info : qatfold::passes::refusalTable()) {
          rows.push_back({{"code", std::string(info.id)},
                          {"message", std::string(info.message)},
                          {"option", std::string(info.option)}});
        }
        return rows;
      },
      "Every reason a batch_norm can be kept (passes/refusal.h): code, message template, option.");
  m.def("describe_passes", [] { return qatfold::passes::describeFoldPipeline(); },
        "The fold pipeline as `qatfold passes` prints it.");

  m.def(
      "fold_archive",
      [](nb::bytes data, const std::map<std::string, std::string>& option_values, bool dry_run, bool explain) {
        qatfold::passes::FoldOptions options;
        for (const auto& [name, text] : option_values) {
          const auto* info = qatfold::passes::findFoldOption(name);
          if (info == nullptr) throw qatfold::Error("unknown fold option '" + name + "'");
          if (auto why = qatfold::passes::setFoldOption(options, *info, text)) throw qatfold::Error(*why);
        }
        std::string input(data.c_str(), data.size());
        qatfold::FoldedArchive result;
        {
          nb::gil_scoped_release release;  // the fold touches no Python objects
          result = qatfold::foldArchiveBytes(std::move(input), options, dry_run);
        }
        return std::make_tuple(nb::bytes(result.archive.data(), result.archive.size()),
                               qatfold::dumpJson(result.report.toJson()), result.report.toText(explain));
      },
      nb::arg("data"), nb::arg("options") = std::map<std::string, std::string>{}, nb::arg("dry_run") = false,
      nb::arg("explain") = false,
      "Folds the PT2 archive `data` with `options` (python_name -> value as text, see fold_options()); returns "
      "(folded archive bytes, report JSON, report text).");

  m.def(
      "inspect_archive",
      [](nb::bytes data) { return qatfold::dumpJson(qatfold::inspectArchiveBytes(std::string(data.c_str(), data.size()))); },
      nb::arg("data"), "The inspect report of the PT2 archive `data`, as JSON.");
}
