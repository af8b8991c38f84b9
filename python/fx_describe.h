// The FX front door's reader: an ExportedProgram's FX graph and graph
// signature, read where they live through the Python C API, as the schema's
// structs the core imports (program/schema.h). No torch.export.save/load, no
// JSON, no pickling; only what the passes read crosses: node names, targets
// and arguments, tensor dtypes, shapes and strides, the signature, and each
// node's module path for the report.
//
// Parameters, buffers and tensor constants cross as the bytes of the
// storages they view, read in place: the storages are kept alive, never
// copied.
#pragma once

#include <vector>

#include <nanobind/nanobind.h>

#include "qatfold/fold.h"
#include "qatfold/program/schema.h"

namespace qatfold::python {

// A described program: its structs, and its tensors as borrowed bytes.
struct FxProgram {
  program::ExportedProgram exported;
  std::vector<BorrowedPayload> payloads;
  nanobind::list storages;  // what `payloads` point into
};

// Describes `program` (a torch.export.ExportedProgram). `context` is the
// dict of torch objects the reader compares with (built once by _fx.py:
// _context()): the Node, Tensor and OpOverload types, operator.getitem,
// torch's dtype, layout and memory-format codes of the schema, the
// signature's input and output kinds, torch.strided, and the exception to
// raise, with a one-line reason, for a program it cannot describe (the
// caller then takes the archive path).
FxProgram describeFxProgram(nanobind::handle program, nanobind::handle context);

}  // namespace qatfold::python
