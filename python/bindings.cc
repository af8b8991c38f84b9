// qatfold._core: the C++ fold for the Python layer, on archive bytes or on
// a program held in memory (the FX front door: python/qatfold/_fx.py).
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
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

namespace {

qatfold::passes::FoldOptions parseOptions(const std::map<std::string, std::string>& option_values) {
  qatfold::passes::FoldOptions options;
  for (const auto& [name, text] : option_values) {
    const auto* info = qatfold::passes::findFoldOption(name);
    if (info == nullptr) throw qatfold::Error("unknown fold option '" + name + "'");
    if (auto why = qatfold::passes::setFoldOption(options, *info, text)) throw qatfold::Error(*why);
  }
  return options;
}

const char* inputKindName(qatfold::program::InputKind kind) {
  switch (kind) {
    case qatfold::program::InputKind::kParameter: return "parameter";
    case qatfold::program::InputKind::kBuffer: return "buffer";
    case qatfold::program::InputKind::kTensorConstant: return "constant";
    default: return "user_input";
  }
}

nb::dict metaDict(const qatfold::program::TensorMeta& meta) {
  nb::dict out;
  out["dtype"] = static_cast<int>(meta.dtype);
  out["sizes"] = meta.sizes;
  out["strides"] = meta.strides;
  out["offset"] = meta.storage_offset;
  return out;
}

// One edit as a dict of what its kind uses (graph/edit_log.h).
nb::dict editDict(const qatfold::graph::Edit& edit) {
  using Kind = qatfold::graph::Edit::Kind;
  nb::dict out;
  out["kind"] = qatfold::graph::editKindName(edit.kind);
  switch (edit.kind) {
    case Kind::kReplaceAllUses:
      out["value"] = edit.value;
      out["other"] = edit.other;
      break;
    case Kind::kSetInput:
      out["node"] = edit.node;
      out["operand"] = edit.operand;
      out["value"] = edit.value;
      break;
    case Kind::kInsertNode: {
      out["node"] = edit.node;
      out["value"] = edit.value;
      out["anchor"] = edit.anchor;
      out["target"] = edit.target;
      nb::list operands;
      for (const auto& operand : edit.operands) {
        operands.append(nb::make_tuple(operand.name, qatfold::dumpJson(operand.argument.toJson())));
      }
      out["operands"] = operands;
      out["metadata_source"] = edit.metadata_source;
      out["meta"] = edit.meta ? nb::object(metaDict(*edit.meta)) : nb::none();
      break;
    }
    case Kind::kEraseNode:
      out["node"] = edit.node;
      break;
    case Kind::kAddConstant:
    case Kind::kReplaceTensorData: {
      out["value"] = edit.value;
      out["fqn"] = edit.fqn;
      out["input_kind"] = inputKindName(edit.input_kind);
      out["meta"] = metaDict(*edit.meta);
      const std::string_view bytes = edit.storage->data();
      out["data"] = nb::bytes(bytes.data(), bytes.size());
      break;
    }
    case Kind::kRemoveConstant:
      out["value"] = edit.value;
      out["fqn"] = edit.fqn;
      out["input_kind"] = inputKindName(edit.input_kind);
      break;
  }
  return out;
}

// A tensor's storage as the front door hands it over: uint8, CPU, read in place.
using StorageArray = nb::ndarray<const std::uint8_t, nb::ndim<1>, nb::device::cpu, nb::c_contig>;
using PayloadTuple = std::tuple<std::string, bool, bool, int, std::vector<std::int64_t>, std::vector<std::int64_t>,
                                std::int64_t, StorageArray>;

}  // namespace

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
        const qatfold::passes::FoldOptions options = parseOptions(option_values);
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
      "fold_graph",
      [](std::string model_json, const std::vector<PayloadTuple>& payloads,
         const std::map<std::string, std::string>& option_values, bool explain) {
        const qatfold::passes::FoldOptions options = parseOptions(option_values);
        std::vector<qatfold::BorrowedPayload> borrowed;
        borrowed.reserve(payloads.size());
        for (const auto& [fqn, constant, is_param, dtype, sizes, strides, offset, storage] : payloads) {
          qatfold::BorrowedPayload payload;
          payload.fqn = fqn;
          payload.constant = constant;
          payload.is_param = is_param;
          payload.meta.dtype = static_cast<qatfold::program::ScalarType>(dtype);
          payload.meta.sizes = sizes;
          payload.meta.strides = strides;
          payload.meta.storage_offset = offset;
          payload.data = reinterpret_cast<const char*>(storage.data());
          payload.size = storage.shape(0);
          borrowed.push_back(std::move(payload));
        }
        qatfold::FoldedGraph result;
        {
          nb::gil_scoped_release release;  // the arrays stay alive: the caller holds them for the call
          result = qatfold::foldGraph(std::move(model_json), borrowed, options);
        }
        nb::list edits;
        for (const auto& edit : result.edits) edits.append(editDict(edit));
        return std::make_tuple(edits, qatfold::dumpJson(result.report.toJson()), result.report.toText(explain));
      },
      nb::arg("model_json"), nb::arg("payloads"), nb::arg("options") = std::map<std::string, std::string>{},
      nb::arg("explain") = false,
      "Folds a program held in memory: `model_json` its graph and signature (python/qatfold/_fx.py), `payloads` "
      "(fqn, constant, is_param, dtype, sizes, strides, storage_offset, uint8 storage) its tensors, read in "
      "place. Returns (edits that make the folded program, report JSON, report text).");

  m.def(
      "inspect_archive",
      [](nb::bytes data) { return qatfold::dumpJson(qatfold::inspectArchiveBytes(std::string(data.c_str(), data.size()))); },
      nb::arg("data"), "The inspect report of the PT2 archive `data`, as JSON.");
}
