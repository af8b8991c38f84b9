// Limits applied while reading untrusted archives, so that no input can make
// qatfold allocate, inflate or recurse without bound. An Error that hits one
// says which (Error::limit()); the CLI names the option that raises it.
#pragma once

#include <cstdint>
#include <string>

namespace qatfold {

struct ReadLimits {
  // Zip records in one archive (a PT2 archive has about one per tensor).
  std::uint64_t max_records = 1'000'000;
  // Bytes a compressed record may inflate to (weights are stored, not
  // compressed, so this bounds JSON and pickles, not parameters).
  std::uint64_t max_inflated_bytes = 4ull << 30;
  // Inflated size over compressed size of one record (zip bombs).
  std::uint64_t max_compression_ratio = 1000;
  // Bytes of one JSON record (models/*.json, payload configs).
  std::uint64_t max_json_bytes = 1ull << 30;
  // Nesting depth of one JSON record (PT2 model JSON nests about 15 deep).
  std::uint64_t max_json_depth = 512;
  // Recompute the CRC-32 of records copied without being parsed (--verify-crc).
  // Off by default: such a record is copied byte for byte with the CRC its
  // central directory states, so a corrupt one leaves as it came and its
  // reader (torch.export.load checks CRCs) reports it; skipping the check
  // lets the kernel copy the weights without reading them. Records qatfold
  // parses (JSON, every payload a pass reads) are always checked.
  bool verify_copied_crc = false;
};

}  // namespace qatfold
