// Fuzz target: the weights payload config and typed tensor access. The input
// replaces the weights config of a real float CNN archive; every payload
// it then describes is viewed and read element by element.
#include "fuzz/fuzz_support.h"
#include "qatfold/error.h"
#include "qatfold/program/program.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace qatfold;
  static const std::unique_ptr<Archive> base = Archive::fromBytes(fuzz::readFixture("float_cnn.pt2"));
  try {
    auto archive = Archive::fromBytes(fuzz::withRecord(*base, weightsConfigPath("model"), fuzz::asView(data, size)));
    auto program = Program::load(*archive);
    for (const auto& payload : program->weights) {
      try {
        (void)payload->view().asDoubles();
      } catch (const Error&) {
      }
    }
  } catch (const Error&) {
  }
  return 0;
}
