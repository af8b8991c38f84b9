// Fuzz target: the zip container reader on arbitrary bytes. Every record the
// directory admits is read whole and streamed raw, as the writer would.
#include "fuzz/fuzz_support.h"
#include "qatfold/archive/zip.h"
#include "qatfold/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace qatfold;
  try {
    ReadLimits limits;
    limits.max_inflated_bytes = 1 << 24;  // keep each run's memory small
    ZipReader zip(makeMemorySource(std::string(fuzz::asView(data, size)), "fuzz.pt2"), limits);
    for (const ZipEntry& entry : zip.entries()) {
      try {
        (void)zip.read(entry);
      } catch (const Error&) {
      }
      try {
        zip.streamRaw(entry, [](const char*, std::size_t) {});
      } catch (const Error&) {
      }
    }
    try {
      Archive archive(
          std::make_unique<ZipReader>(makeMemorySource(std::string(fuzz::asView(data, size)), "fuzz.pt2"), limits));
      (void)archive.paths();
    } catch (const Error&) {
    }
  } catch (const Error&) {
  }
  return 0;
}
