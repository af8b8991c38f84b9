// The qatfold command line.
//
// Exit codes: 0 success; 1 the input could not be read or the output could
// not be written (one line on stderr names the file and the problem);
// 2 wrong usage.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include "qatfold/archive/archive.h"
#include "qatfold/cli/inspect.h"
#include "qatfold/error.h"
#include "qatfold/graph/graph.h"
#include "qatfold/version.h"
#include "qatfold/writer/pt2_writer.h"

namespace {

constexpr int kExitInputError = 1;
constexpr int kExitUsage = 2;

// An error tied to a file: printed as "qatfold: error: FILE: message".
struct FileError {
  std::string file;
  std::string message;
};

struct Loaded {
  std::unique_ptr<qatfold::Archive> archive;
  std::unique_ptr<qatfold::Program> program;
  std::unique_ptr<qatfold::graph::Graph> graph;
};

Loaded load(const std::string& path) {
  try {
    Loaded loaded;
    loaded.archive = qatfold::Archive::open(path);
    loaded.program = qatfold::Program::load(*loaded.archive);
    loaded.graph = std::make_unique<qatfold::graph::Graph>(*loaded.program);
    return loaded;
  } catch (const qatfold::Error& e) {
    throw FileError{path, e.what()};
  }
}

int runInspect(const std::string& input, bool json) {
  Loaded loaded = load(input);
  qatfold::Json report = qatfold::cli::inspectReport(*loaded.archive, *loaded.graph);
  if (json) {
    std::cout << qatfold::dumpJson(report) << "\n";
  } else {
    std::cout << qatfold::cli::formatInspectReport(report);
  }
  return 0;
}

int runRoundtrip(const std::string& input, const std::string& output) {
  Loaded loaded = load(input);
  try {
    loaded.graph->lint();
    qatfold::writeProgramFile(*loaded.archive, *loaded.graph, output);
  } catch (const qatfold::Error& e) {
    throw FileError{output, e.what()};
  }
  std::cout << "wrote " << output << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"qatfold: fold QAT Conv+BatchNorm chains of torch.export PT2 archives into quantized conv biases"};
  app.set_version_flag("--version", std::string("qatfold ") + qatfold::kVersion);
  app.require_subcommand(1);
  app.footer("Exit codes: 0 success, 1 unreadable input or unwritable output, 2 wrong usage.");

  std::string input;
  std::string output;
  bool json = false;

  CLI::App* inspect = app.add_subcommand("inspect", "Summarize a PT2 archive: versions, ops, weights, inputs, outputs");
  inspect->add_option("MODEL", input, "PT2 archive (.pt2)")->required();
  inspect->add_flag("--json", json, "Print the summary as JSON");

  CLI::App* roundtrip = app.add_subcommand("roundtrip", "Read an archive into the graph IR and write it back unchanged");
  roundtrip->add_option("IN", input, "PT2 archive to read")->required();
  roundtrip->add_option("-o,--output", output, "Where to write the result")->required();

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
    if (inspect->parsed()) return runInspect(input, json);
    if (roundtrip->parsed()) return runRoundtrip(input, output);
  } catch (const FileError& e) {
    std::cerr << "qatfold: error: " << e.file << ": " << e.message << "\n";
    return kExitInputError;
  } catch (const qatfold::Error& e) {
    std::cerr << "qatfold: error: " << e.what() << "\n";
    return kExitInputError;
  } catch (const std::bad_alloc&) {
    std::cerr << "qatfold: error: " << input << ": out of memory\n";
    return kExitInputError;
  } catch (const std::exception& e) {
    std::cerr << "qatfold: error: " << input << ": " << e.what() << "\n";
    return kExitInputError;
  }
  return kExitUsage;
}
