// The qatfold command line.
//
// Exit codes: 0 success (for fold: the archive was written, or --dry-run,
// even if nothing was folded); 1 the input could not be read or the output
// could not be written (one line on stderr names the file and the problem);
// 2 wrong usage; 3 fold --max-risk: the archive was written, but a folded
// conv's output-range risk exceeds the limit (for CI pipelines); 4 fold
// --strict: the archive was written, but a batch_norm is left in a quantized
// program or one runs in training mode (4 wins over 3).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>

#include "qatfold/archive/archive.h"
#include "qatfold/error.h"
#include "qatfold/loaded_program.h"
#include "qatfold/passes/patterns.h"
#include "qatfold/passes/pipeline.h"
#include "qatfold/passes/registry.h"
#include "qatfold/report/dot.h"
#include "qatfold/report/fold_report.h"
#include "qatfold/report/inspect.h"
#include "qatfold/version.h"
#include "qatfold/writer/pt2_writer.h"

namespace {

constexpr int kExitInputError = 1;
constexpr int kExitUsage = 2;
constexpr int kExitRiskAboveLimit = 3;
constexpr int kExitStrict = 4;

// An error tied to a file: printed as "qatfold: error: FILE: message".
struct FileError {
  std::string file;
  std::string message;
};

using Loaded = qatfold::LoadedProgram;

// Limits on what an input may make us read, shared by every command.
qatfold::ReadLimits g_limits;

// Each read limit's option: what the library's errors point to.
struct LimitOption {
  qatfold::ExceededLimit limit;
  const char* flag;
  std::uint64_t qatfold::ReadLimits::* field;
  const char* help;
};
constexpr LimitOption kLimitOptions[] = {
    {qatfold::ExceededLimit::kRecords, "--max-records", &qatfold::ReadLimits::max_records,
     "Most zip records in one archive"},
    {qatfold::ExceededLimit::kInflatedBytes, "--max-inflated-size", &qatfold::ReadLimits::max_inflated_bytes,
     "Most bytes one compressed record may inflate to"},
    {qatfold::ExceededLimit::kCompressionRatio, "--max-compression-ratio", &qatfold::ReadLimits::max_compression_ratio,
     "Largest inflated/compressed size ratio of one record"},
    {qatfold::ExceededLimit::kJsonBytes, "--max-json-size", &qatfold::ReadLimits::max_json_bytes,
     "Most bytes of one JSON record"},
    {qatfold::ExceededLimit::kJsonDepth, "--max-json-depth", &qatfold::ReadLimits::max_json_depth,
     "Deepest nesting of one JSON record"},
};

void addLimitOptions(CLI::App* command) {
  const char* group = "Input limits (raise them for models that need more)";
  for (const LimitOption& option : kLimitOptions) {
    CLI::Option* added = command->add_option(option.flag, g_limits.*option.field, option.help);
    added->group(group)->capture_default_str();
    if (option.limit == qatfold::ExceededLimit::kJsonDepth) added->check(CLI::Range(1, 100000));
  }
}

// The library's message, and for a limit the option that raises it.
std::string describe(const qatfold::Error& e) {
  for (const LimitOption& option : kLimitOptions) {
    if (option.limit == e.limit()) return std::string(e.what()) + " (raise it with " + option.flag + ")";
  }
  return e.what();
}

// --verify-crc, for the commands that copy records they do not parse.
void addVerifyOption(CLI::App* command) {
  command->add_flag("--verify-crc", g_limits.verify_copied_crc,
                    "Also check the CRC-32 of records copied without parsing (weights no pass reads); by default they "
                    "are copied by the kernel with their stated CRC, which torch.export.load checks");
}

Loaded load(const std::string& path) {
  try {
    return Loaded::open(path, g_limits);
  } catch (const qatfold::Error& e) {
    throw FileError{path, describe(e)};
  }
}

// A command's loaded program, kept until the process exits: freeing its
// hundreds of thousands of small objects one by one cost about a tenth of a
// 400-chain fold (perf), and the exit frees them at once. Held from a
// global, so leak checkers see it as reachable.
Loaded& keepUntilExit(Loaded loaded) {
  static auto* kept = new std::vector<std::unique_ptr<Loaded>>();
  kept->push_back(std::make_unique<Loaded>(std::move(loaded)));
  return *kept->back();
}

// Opens an output the way every command writes one (archive/byte_io.h:
// symlinks followed, a device written through, a file replaced atomically
// with its mode kept); a failure names the output.
std::unique_ptr<qatfold::OutputSink> openOutput(const std::string& path) {
  try {
    return qatfold::openOutputFile(path);
  } catch (const qatfold::Error& e) {
    throw FileError{path, describe(e)};
  }
}

// Writes the archive of `loaded` to `sink`, the output `output`. Failures
// writing name the output; failures reading the input's records on the way
// name the input. With `changed` false (a fold that changed nothing) the
// input's bytes are copied.
void write(const Loaded& loaded, const std::string& input, const std::string& output, qatfold::OutputSink& sink,
           bool changed = true) {
  try {
    qatfold::writeFoldResult(*loaded.archive, *loaded.graph, changed, sink);
  } catch (const qatfold::OutputError& e) {
    throw FileError{output, describe(e)};
  } catch (const qatfold::Error& e) {
    throw FileError{input, describe(e)};
  }
}

// Writes `bytes` to `sink`, the output `path`.
void writeBytes(qatfold::OutputSink& sink, const std::string& path, const std::string& bytes) {
  try {
    sink.write(bytes.data(), bytes.size());
  } catch (const qatfold::Error& e) {
    throw FileError{path, describe(e)};
  }
}

// Makes each opened output visible, in order.
void commitAll(std::initializer_list<std::pair<qatfold::OutputSink*, const std::string*>> outputs) {
  for (const auto& [sink, path] : outputs) {
    if (sink == nullptr) continue;
    try {
      sink->commit();
    } catch (const qatfold::Error& e) {
      throw FileError{*path, describe(e)};
    }
  }
}

// The batch_norm nodes of a graph: the centres of the "before" picture.
std::vector<const qatfold::graph::Node*> batchNorms(const qatfold::graph::Graph& graph) {
  std::vector<const qatfold::graph::Node*> found;
  for (const auto* node : graph.nodes()) {
    if (qatfold::passes::isBatchNorm(*node)) found.push_back(node);
  }
  return found;
}

int runInspect(const std::string& input, bool json, bool dot, bool text, bool all_data) {
  Loaded loaded = load(input);
  if (text) {
    std::cout << qatfold::graph::printGraph(*loaded.graph, all_data ? SIZE_MAX : qatfold::graph::kPrintedElements);
    return 0;
  }
  if (dot) {
    std::cout << qatfold::report::graphToDot(*loaded.graph, input);
    return 0;
  }
  qatfold::Json report = qatfold::report::inspectReport(*loaded.archive, *loaded.graph);
  if (json) {
    std::cout << qatfold::dumpJson(report) << "\n";
  } else {
    std::cout << qatfold::report::formatInspectReport(report);
  }
  return 0;
}

int runRoundtrip(const std::string& input, const std::string& output) {
  Loaded& loaded = keepUntilExit(load(input));
  try {
    loaded.graph->lint();
  } catch (const qatfold::Error& e) {
    throw FileError{input, describe(e)};
  }
  std::unique_ptr<qatfold::OutputSink> sink = openOutput(output);
  write(loaded, input, output, *sink);
  commitAll({{sink.get(), &output}});
  std::cout << "wrote " << output << "\n";
  return 0;
}

int runAssemble(const std::string& input, const std::string& output, const std::optional<std::string>& fill_elided) {
  std::ifstream in(input, std::ios::binary);
  if (!in) throw FileError{input, "cannot read the file"};
  std::ostringstream text;
  text << in.rdbuf();
  std::string bytes;
  try {
    bytes = qatfold::archiveFromText(text.str(), std::filesystem::path(output).stem().string(), fill_elided);
    // What we write must read back: the reader checks every record.
    (void)qatfold::LoadedProgram::fromArchive(qatfold::Archive::fromBytes(bytes, output));
  } catch (const qatfold::Error& e) {
    throw FileError{input, describe(e)};
  }
  std::unique_ptr<qatfold::OutputSink> sink = openOutput(output);
  writeBytes(*sink, output, bytes);
  commitAll({{sink.get(), &output}});
  std::cout << "wrote " << output << "\n";
  return 0;
}

struct FoldCommand {
  std::string input;
  std::string output;
  bool explain = false;
  bool json = false;
  bool dry_run = false;
  qatfold::passes::FoldOptions options;
  std::optional<double> max_risk;
  std::string dot_before;
  std::string dot_after;
};

int runFold(const FoldCommand& command) {
  Loaded& loaded = keepUntilExit(load(command.input));
  qatfold::passes::FoldReport report;
  // Each chain from the conv's quantized inputs to the batch_norm's users.
  std::string before;
  if (!command.dot_before.empty()) {
    before = qatfold::report::neighbourhoodToDot(*loaded.graph, batchNorms(*loaded.graph), 8, 1,
                                                 command.input + ": before qatfold fold");
  }
  try {
    report = qatfold::passes::runFoldPipeline(*loaded.graph, command.options);
  } catch (const qatfold::Error& e) {
    throw FileError{command.input, describe(e)};
  }
  // Every output is opened before any is written: one that cannot be
  // written (a missing folder) leaves the others untouched.
  std::unique_ptr<qatfold::OutputSink> archive_sink = command.dry_run ? nullptr : openOutput(command.output);
  std::unique_ptr<qatfold::OutputSink> before_sink =
      command.dot_before.empty() ? nullptr : openOutput(command.dot_before);
  std::unique_ptr<qatfold::OutputSink> after_sink = command.dot_after.empty() ? nullptr : openOutput(command.dot_after);
  if (archive_sink) write(loaded, command.input, command.output, *archive_sink, report.changed);
  if (before_sink) writeBytes(*before_sink, command.dot_before, before);
  if (after_sink) {
    // The folded convs with their inputs and users, and any batch_norm left.
    std::vector<const qatfold::graph::Node*> centers = batchNorms(*loaded.graph);
    for (const auto* node : loaded.graph->nodes()) {
      for (const auto& chain : report.folded) {
        if (node->name() == chain.conv) centers.push_back(node);
      }
    }
    writeBytes(
        *after_sink, command.dot_after,
        qatfold::report::neighbourhoodToDot(*loaded.graph, centers, 3, 2, command.input + ": after qatfold fold"));
  }
  commitAll({{archive_sink.get(), &command.output},
             {before_sink.get(), &command.dot_before},
             {after_sink.get(), &command.dot_after}});
  if (command.json) {
    qatfold::Json json = qatfold::report::foldReportJson(report);
    json["input"] = command.input;
    json["output"] = command.dry_run ? qatfold::Json(nullptr) : qatfold::Json(command.output);
    std::cout << qatfold::dumpJson(json) << "\n";
  } else {
    std::cout << qatfold::report::foldReportText(report, command.explain, qatfold::passes::OptionStyle::kCli);
    std::cout << (command.dry_run ? "dry run: nothing written\n" : "wrote " + command.output + "\n");
  }
  int exit_code = 0;
  if (command.max_risk) {
    std::size_t above = 0;
    double worst = 0;
    std::string worst_conv;
    for (const auto& chain : report.folded) {
      if (!chain.output_quantized || !(chain.risk.relative_shift > *command.max_risk)) continue;
      ++above;
      if (chain.risk.relative_shift > worst) {
        worst = chain.risk.relative_shift;
        worst_conv = chain.module_path.empty() ? chain.conv : chain.conv + " (" + chain.module_path + ")";
      }
    }
    if (above > 0) {
      std::fprintf(stderr, "qatfold: %zu folded conv(s) exceed --max-risk %g; worst %s at %.1f%% of its output range\n",
                   above, *command.max_risk, worst_conv.c_str(), 100.0 * worst);
      exit_code = kExitRiskAboveLimit;
    }
  }
  // --strict: every batch_norm left that an integer backend cannot take.
  if (command.options.strict && report.strictFailed()) {
    const std::vector<const qatfold::passes::SkippedBatchNorm*> failures = report.strictFailures();
    if (failures.empty()) {
      std::cerr << "qatfold: strict: the program has batch_norms and no quantization (see the warning)\n";
    } else {
      std::cerr << "qatfold: strict: " << failures.size() << " batch_norm(s) left:\n";
    }
    for (const auto* s : failures) {
      std::cerr << "  " << (s->module_path.empty() ? s->batch_norm : s->batch_norm + " (" + s->module_path + ")")
                << ": " << s->reason() << "\n";
    }
    exit_code = kExitStrict;  // wins over --max-risk's 3
  }
  return exit_code;
}

// "{keep,widen}": the values of a choice option.
std::string choiceList(const qatfold::passes::FoldOptionInfo& info) {
  std::string text;
  for (std::string_view name : info.choices) text += (text.empty() ? "{" : ",") + std::string(name);
  return text + "}";
}

// The pipeline's options (passes/fold_options.h) as flags of `command`,
// parsed into `options` by the library, as every front end parses them.
void addFoldOptions(CLI::App* command, qatfold::passes::FoldOptions& options) {
  const qatfold::passes::FoldOptions defaults;
  for (const qatfold::passes::FoldOptionInfo& info : qatfold::passes::kFoldOptions) {
    const std::string flag(info.cli_flag);
    if (info.flag != nullptr) {
      command->add_flag(flag, options.*info.flag, std::string(info.help));
      continue;
    }
    command
        ->add_option_function<std::string>(
            flag,
            [&options, &info, flag](const std::string& text) {
              if (auto why = qatfold::passes::setFoldOption(options, info, text))
                throw CLI::ValidationError(flag, *why);
            },
            std::string(info.help))
        ->default_str(qatfold::passes::foldOptionValue(defaults, info))
        ->type_name(info.real != nullptr ? std::string("FLOAT") : choiceList(info));
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"qatfold: fold QAT Conv+BatchNorm chains of torch.export PT2 archives into quantized conv biases"};
  app.set_version_flag("--version", std::string("qatfold ") + qatfold::kVersion);
  app.require_subcommand(1);
  app.footer(
      "Exit codes: 0 success, 1 unreadable input or unwritable output, 2 wrong usage, "
      "3 fold --max-risk exceeded (output written), 4 fold --strict: batch_norms left (output written; wins over 3).");

  std::string input;
  std::string output;
  bool json = false;

  CLI::App* inspect = app.add_subcommand("inspect", "Summarize a PT2 archive: versions, ops, weights, inputs, outputs");
  inspect->add_option("MODEL", input, "PT2 archive (.pt2)")->required();
  CLI::Option* inspect_json = inspect->add_flag("--json", json, "Print the summary as JSON");
  bool dot = false;
  CLI::Option* inspect_dot =
      inspect->add_flag("--dot", dot, "Print the graph in Graphviz dot (render: dot -Tsvg)")->excludes(inspect_json);
  bool text = false;
  CLI::Option* inspect_text =
      inspect->add_flag("--text", text, "Print the graph as text (the form `qatfold assemble` reads)")
          ->excludes(inspect_json)
          ->excludes(inspect_dot);
  bool all_data = false;
  inspect
      ->add_flag("--all-data", all_data,
                 "With --text: print every tensor's data (by default tensors of over 32 elements are elided), so "
                 "`qatfold assemble` reads the text back into the same program")
      ->needs(inspect_text);

  std::string text_input;
  CLI::App* assemble =
      app.add_subcommand("assemble", "Build a PT2 archive from a graph written as text (tests, repros)");
  assemble->add_option("TEXT", text_input, "Text graph (see `qatfold inspect --text`)")->required();
  assemble->add_option("-o,--output", output, "Where to write the archive")->required();
  std::optional<std::string> fill_elided;
  assemble
      ->add_option("--fill-elided", fill_elided,
                   "Give tensors the text elides (written without data) this value in every element; without it "
                   "such a tensor is an error")
      ->type_name("V");
  addLimitOptions(inspect);

  CLI::App* roundtrip =
      app.add_subcommand("roundtrip", "Read an archive into the graph IR and write it back unchanged");
  roundtrip->add_option("IN", input, "PT2 archive to read")->required();
  roundtrip->add_option("-o,--output", output, "Where to write the result")->required();
  addLimitOptions(roundtrip);
  addVerifyOption(roundtrip);

  FoldCommand fold_command;
  CLI::App* fold = app.add_subcommand("fold", "Fold QAT Conv+BatchNorm chains into the convs' int32 biases");
  fold->add_option("IN", fold_command.input, "PT2 archive to read")->required();
  CLI::Option* fold_output = fold->add_option("-o,--output", fold_command.output, "Where to write the folded archive");
  CLI::Option* dry_run =
      fold->add_flag("--dry-run", fold_command.dry_run, "Report what would be folded; write nothing");
  fold_output->excludes(dry_run);
  fold->add_flag("--explain", fold_command.explain, "Say why every batch_norm left in the graph was not folded");
  fold->add_flag("--json", fold_command.json, "Print the report as JSON");
  addFoldOptions(fold, fold_command.options);
  fold->add_option(
          "--max-risk", fold_command.max_risk,
          "Exit with code 3 (after writing) if any folded conv's shift exceeds this fraction of its output range")
      ->check(CLI::Range(0.0, 1e9));
  fold->add_option("--dot-before", fold_command.dot_before,
                   "Write a Graphviz picture of every batch_norm chain before folding to this file");
  fold->add_option("--dot-after", fold_command.dot_after,
                   "Write a Graphviz picture of the folded convs (and any batch_norm left) to this file");
  addLimitOptions(fold);
  addVerifyOption(fold);
  fold->footer(qatfold::passes::describeFoldPipeline());
  fold->callback([&] {
    if (!fold_command.dry_run && fold_command.output.empty()) throw CLI::RequiredError("-o,--output (or --dry-run)");
  });

  CLI::App* passes = app.add_subcommand("passes", "List the passes of the fold pipeline");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitUsage;
  }

  try {
    if (inspect->parsed()) return runInspect(input, json, dot, text, all_data);
    if (assemble->parsed()) return runAssemble(text_input, output, fill_elided);
    if (roundtrip->parsed()) return runRoundtrip(input, output);
    if (fold->parsed()) return runFold(fold_command);
    if (passes->parsed()) {
      std::cout << qatfold::passes::describeFoldPipeline();
      return 0;
    }
  } catch (const FileError& e) {
    std::cerr << "qatfold: error: " << e.file << ": " << e.message << "\n";
    return kExitInputError;
  } catch (const qatfold::Error& e) {
    std::cerr << "qatfold: error: " << describe(e) << "\n";
    return kExitInputError;
  } catch (const std::bad_alloc&) {
    std::cerr << "qatfold: error: " << (input.empty() ? fold_command.input : input) << ": out of memory\n";
    return kExitInputError;
  } catch (const std::exception& e) {
    std::cerr << "qatfold: error: " << (input.empty() ? fold_command.input : input) << ": " << e.what() << "\n";
    return kExitInputError;
  }
  return kExitUsage;
}
