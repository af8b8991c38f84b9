// Fuzz target: the whole job in memory. Archive bytes in, fold, archive bytes
// out; whatever qatfold writes it must read back and find nothing to fold.
#include "fuzz/fuzz_support.h"
#include "qatfold/error.h"
#include "qatfold/fold.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace qatfold;
  FoldedArchive folded;
  try {
    folded = foldArchiveBytes(std::string(fuzz::asView(data, size)), {});
  } catch (const Error&) {
    return 0;
  }
  // Our own output must be valid and stable: a second fold changes nothing.
  FoldedArchive again = foldArchiveBytes(folded.archive, {});
  if (again.archive != folded.archive) __builtin_trap();
  return 0;
}
