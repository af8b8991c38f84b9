// qatfold._core: the C++ fold for the Python layer, on archive bytes or on
// a program held in memory (the FX front door: python/qatfold/_fx.py).
#include <nanobind/nanobind.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <exception>
#include <memory>
#include <system_error>
#include <thread>

#include "fx_describe.h"
#include "qatfold/archive/byte_io.h"
#include "qatfold/error.h"
#include "qatfold/fold.h"
#include "qatfold/graph/text.h"
#include "qatfold/passes/fold_options.h"
#include "qatfold/passes/refusal.h"
#include "qatfold/passes/registry.h"
#include "qatfold/quant/dialect.h"
#include "qatfold/report/fold_report.h"
#include "qatfold/version.h"

namespace nb = nanobind;

namespace {

// batch_norm node name -> (min, max) its output took on calibration inputs.
using ObservedRanges = std::map<std::string, std::pair<float, float>>;

qatfold::passes::FoldOptions parseOptions(const std::map<std::string, std::string>& option_values,
                                          const ObservedRanges& observed = {}) {
  qatfold::passes::FoldOptions options;
  for (const auto& [name, text] : option_values) {
    const auto* info = qatfold::passes::findFoldOption(name);
    if (info == nullptr) throw qatfold::Error("unknown fold option '" + name + "'");
    if (auto why = qatfold::passes::setFoldOption(options, *info, text)) throw qatfold::Error(*why);
  }
  for (const auto& [name, range] : observed) options.observed_ranges[name] = {range.first, range.second};
  return options;
}

nb::dict metaDict(const qatfold::program::TensorMeta& meta) {
  nb::dict out;
  out["dtype"] = static_cast<int>(meta.dtype);
  out["sizes"] = meta.sizes;
  out["strides"] = meta.strides;
  out["offset"] = meta.storage_offset;
  return out;
}

// A JSON value as the Python value json.loads would give.
nb::object pythonValue(const qatfold::Json& json) {
  switch (json.type()) {
    case qatfold::Json::value_t::null: return nb::none();
    case qatfold::Json::value_t::boolean: return nb::bool_(json.get<bool>());
    case qatfold::Json::value_t::number_integer: return nb::int_(json.get<std::int64_t>());
    case qatfold::Json::value_t::number_unsigned: return nb::int_(json.get<std::uint64_t>());
    case qatfold::Json::value_t::number_float: return nb::float_(json.get<double>());
    case qatfold::Json::value_t::string: {
      const std::string& text = json.get_ref<const std::string&>();
      return nb::str(text.data(), text.size());
    }
    case qatfold::Json::value_t::array: {
      nb::list list;
      for (const qatfold::Json& item : json) list.append(pythonValue(item));
      return list;
    }
    case qatfold::Json::value_t::object: {
      nb::dict dict;
      for (const auto& [key, value] : json.items()) dict[nb::str(key.data(), key.size())] = pythonValue(value);
      return dict;
    }
    default: throw qatfold::Error("a JSON value of an unexpected type");
  }
}

// An argument as {"as_<kind>": payload}, the schema's union as Python values.
nb::dict argumentDict(const qatfold::program::Argument& argument) {
  nb::dict out;
  out[argument.tag().c_str()] = pythonValue(argument.payload());
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
    case Kind::kSetArgument:
      out["node"] = edit.node;
      out["operand"] = edit.operand;
      out["argument"] = argumentDict(*edit.argument);
      break;
    case Kind::kInsertNode: {
      out["node"] = edit.node;
      out["value"] = edit.value;
      out["anchor"] = edit.anchor;
      out["target"] = edit.target;
      nb::list operands;
      for (const auto& operand : edit.operands) {
        operands.append(nb::make_tuple(operand.name, argumentDict(operand.argument)));
      }
      out["operands"] = operands;
      out["metadata_source"] = edit.metadata_source;
      out["meta"] = edit.meta ? nb::object(metaDict(*edit.meta)) : nb::none();
      break;
    }
    case Kind::kEraseNode: out["node"] = edit.node; break;
    case Kind::kAddConstant:
    case Kind::kReplaceTensorData: {
      out["value"] = edit.value;
      out["fqn"] = edit.fqn;
      out["input_kind"] = std::string(qatfold::program::inputKindName(edit.input_kind));
      out["meta"] = metaDict(*edit.meta);
      const std::string_view bytes = edit.storage->data();
      out["data"] = nb::bytes(bytes.data(), bytes.size());
      break;
    }
    case Kind::kRemoveConstant:
      out["value"] = edit.value;
      out["fqn"] = edit.fqn;
      out["input_kind"] = std::string(qatfold::program::inputKindName(edit.input_kind));
      break;
  }
  return out;
}

// Runs `work` on a thread of its own and waits for it. glibc gives a thread
// its own malloc arena, so what the core allocates there (the program and
// graph, some hundred thousand small blocks at 400 chains) does not live in
// the main thread's arena: the thread that frees it later (~HeldProgram)
// then takes no lock that Python's allocations on the main thread need.
// Without a thread to be had, it runs here.
template <class Work>
void onOwnArena(Work&& work) {
  std::exception_ptr error;
  {
    nb::gil_scoped_release release;
    try {
      std::thread worker([&] {
        try {
          work();
        } catch (...) {
          error = std::current_exception();
        }
      });
      worker.join();
    } catch (const std::system_error&) {
      work();  // no thread to be had: here, as the worker would (without the GIL)
    }
  }
  if (error) std::rethrow_exception(error);
}

// The core's program over tensors a Python list keeps alive.
//
// The program is freed on a thread of its own: a 400-chain graph is some
// hundred thousand small allocations, 15-25 ms of free() that the caller,
// who has the edits by then, need not wait for. Nothing in it reads the
// borrowed tensors as it goes, so the storages are let go at once.
struct HeldProgram {
  HeldProgram(qatfold::program::ExportedProgram exported, nb::list storages,
              const std::vector<qatfold::BorrowedPayload>& borrowed)
      : storages(std::move(storages)),
        program(std::make_unique<qatfold::MemoryProgram>(std::move(exported), borrowed)) {}
  HeldProgram(const HeldProgram&) = delete;
  HeldProgram& operator=(const HeldProgram&) = delete;
  ~HeldProgram() {
    try {
      std::thread([program = std::move(program)]() mutable { program.reset(); }).detach();
    } catch (const std::system_error&) {
      program.reset();  // no thread to be had: free it here
    }
  }
  nb::list storages;  // what `program` reads
  std::unique_ptr<qatfold::MemoryProgram> program;
};

}  // namespace

NB_MODULE(_core, m) {
  m.doc() = "qatfold's C++ core: folds QAT Conv+BatchNorm chains of PT2 archives held in memory.";
  m.attr("__version__") = qatfold::kVersion;
  static nb::exception<qatfold::Error> error(m, "QatfoldError", PyExc_ValueError);
  error.attr("__doc__") =
      "Raised by every qatfold entry point for what it cannot take: an unreadable program or file, an argument of "
      "the wrong type or value (the message names the argument and what was expected). A subclass of ValueError.";

  m.def(
      "fold_options",
      [] {
        const qatfold::passes::FoldOptions defaults;
        nb::list rows;
        for (const auto& info : qatfold::passes::kFoldOptions) {
          nb::dict row;
          row["python_name"] = std::string(info.python_name);
          row["cli_flag"] = std::string(info.cli_flag);
          row["help"] = std::string(info.help);
          row["default"] = qatfold::passes::foldOptionValue(defaults, info);
          if (info.flag != nullptr) {
            row["kind"] = "flag";
          } else if (info.real != nullptr) {
            row["kind"] = "float";
            row["min"] = info.min;
            row["max"] = info.max;
          } else {
            nb::list choices;
            for (std::string_view choice : info.choices) choices.append(std::string(choice));
            row["kind"] = "choice";
            row["choices"] = choices;
          }
          rows.append(row);
        }
        return rows;
      },
      "The fold pipeline's options (passes/fold_options.h): python_name, cli_flag, help, default (as text), kind "
      "('float' with min and max, 'choice' with choices, or 'flag').");
  m.def(
      "report_fields", [] { return qatfold::dumpJson(qatfold::report::foldReportFields()); },
      "The keys of each object of the JSON fold report, by the name of the Python dataclass that mirrors it "
      "(report/fold_report.h), as JSON.");
  m.def(
      "quantization_ops",
      [] {
        std::vector<std::map<std::string, std::string>> rows;
        for (const qatfold::quant::Op op : qatfold::quant::ops()) {
          rows.push_back({{"name", std::string(qatfold::quant::nameOf(op))},
                          {"target", std::string(qatfold::quant::targetOf(op))},
                          {"role", qatfold::quant::isQuantize(op) ? "quantize" : "dequantize"},
                          {"granularity", qatfold::quant::isPerChannel(op) ? "per_channel" : "per_tensor"}});
        }
        return rows;
      },
      "The quantize and dequantize ops of the quantization dialect (quant/dialect.h): name, target, role "
      "('quantize' or 'dequantize'), granularity ('per_tensor' or 'per_channel').");
  m.def(
      "refusal_codes",
      [] {
        std::vector<std::map<std::string, std::string>> rows;
        for (const auto& info : qatfold::passes::refusalTable()) {
          rows.push_back({{"code", std::string(info.id)},
                          {"message", std::string(info.message)},
                          {"option", std::string(info.option)},
                          {"option_value", std::string(info.option_value)}});
        }
        return rows;
      },
      "Every reason a batch_norm can be kept (passes/refusal.h): code, message template, option, option_value.");
  m.def(
      "describe_passes", [] { return qatfold::passes::describeFoldPipeline(); },
      "The fold pipeline as `qatfold passes` prints it.");

  m.def(
      "fold_archive",
      [](nb::bytes data, const std::map<std::string, std::string>& option_values, bool dry_run, bool explain,
         const ObservedRanges& observed) {
        const qatfold::passes::FoldOptions options = parseOptions(option_values, observed);
        std::string input(data.c_str(), data.size());
        qatfold::FoldedArchive result;
        {
          nb::gil_scoped_release release;  // the fold touches no Python objects
          result = qatfold::foldArchiveBytes(std::move(input), options, dry_run);
        }
        return std::make_tuple(nb::bytes(result.archive.data(), result.archive.size()),
                               qatfold::dumpJson(qatfold::report::foldReportJson(result.report)),
                               qatfold::report::foldReportText(result.report, explain));
      },
      nb::arg("data"), nb::arg("options") = std::map<std::string, std::string>{}, nb::arg("dry_run") = false,
      nb::arg("explain") = false, nb::arg("observed") = ObservedRanges{},
      "Folds the PT2 archive `data` with `options` (python_name -> value as text, see fold_options()) and the "
      "batch_norm output ranges `observed` on calibration inputs (name -> (min, max)); returns (folded archive "
      "bytes, report JSON, report text).");

  // The FX front door (python/qatfold/_fx.py): a program described where it
  // lives, its tensors read in place.
  nb::class_<HeldProgram>(m, "MemoryProgram",
                          "An ExportedProgram as the core's graph, built from its FX graph and signature (no "
                          "serialization) over its tensors, read in place.")
      .def(
          "__init__",
          [](HeldProgram* self, nb::handle program, nb::handle context) {
            onOwnArena([&] {
              nb::gil_scoped_acquire gil;  // the describer reads Python objects
              qatfold::python::FxProgram described = qatfold::python::describeFxProgram(program, context);
              new (self) HeldProgram(std::move(described.exported), described.storages, described.payloads);
            });
          },
          nb::arg("program"), nb::arg("context"),
          "Describes `program` (python/fx_describe.h; `context` from _fx._context()), its tensors read in place.")
      .def(
          "text",
          [](const HeldProgram& self, std::size_t max_elements) {
            return qatfold::graph::printGraph(self.program->graph(), max_elements);
          },
          nb::arg("max_elements") = qatfold::graph::kPrintedElements,
          "The graph as `qatfold inspect --text` prints it (graph/text.h).")
      .def(
          "fold",
          [](HeldProgram& self, const std::map<std::string, std::string>& option_values, bool explain,
             const ObservedRanges& observed) {
            const qatfold::passes::FoldOptions options = parseOptions(option_values, observed);
            qatfold::FoldedGraph result;
            // Without the GIL (the storages stay alive: self holds them), in
            // the arena the graph was built in.
            onOwnArena([&] { result = self.program->fold(options); });
            nb::list edits;
            for (const auto& edit : result.edits) edits.append(editDict(edit));
            return std::make_tuple(edits, qatfold::dumpJson(qatfold::report::foldReportJson(result.report)),
                                   qatfold::report::foldReportText(result.report, explain));
          },
          nb::arg("options") = std::map<std::string, std::string>{}, nb::arg("explain") = false,
          nb::arg("observed") = ObservedRanges{},
          "Folds the program with `options` (python_name -> value as text, see fold_options()) and the observed "
          "batch_norm output ranges (as fold_archive); returns (the edits that make the folded program, report "
          "JSON, report text).");

  m.def(
      "inspect_archive",
      [](nb::bytes data) {
        return qatfold::dumpJson(qatfold::inspectArchiveBytes(std::string(data.c_str(), data.size())));
      },
      nb::arg("data"), "The inspect report of the PT2 archive `data`, as JSON.");
  m.def(
      "write_output",
      [](const std::string& path, nb::bytes data) {
        std::unique_ptr<qatfold::OutputSink> sink = qatfold::openOutputFile(path);
        sink->write(data.c_str(), data.size());
        sink->commit();
      },
      nb::arg("path"), nb::arg("data"),
      "Writes `data` to `path` as every qatfold command writes an output (archive/byte_io.h: a symlink's target, a "
      "character device written through, a file replaced atomically with its mode kept, anything else refused).");
}
