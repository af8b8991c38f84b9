// A JSON record's text, ready to be read in place.
//
// Readers walk it with simdjson's On-Demand API (Debian's libsimdjson-dev)
// and keep slices of it instead of building a document tree; they check
// every value as they pass it (see schema_reader.cc, and bench/json_readers
// for the measurements behind the choice). The buffer carries the padding
// simdjson reads past the end.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace qatfold {

class JsonText {
 public:
  // Takes `text`, refusing more than `max_depth` levels of nesting (an
  // Error naming the limit and its option). Bare NaN / Infinity / -Infinity
  // tokens (Python's json default) are rewritten to torch's string encoding.
  // Syntax is the reader's to check.
  // `text` is taken over; with kPadding bytes of spare capacity it is not copied.
  static std::shared_ptr<const JsonText> parse(std::string text, std::size_t max_depth = 512);
  // The bytes simdjson may read past the end (SIMDJSON_PADDING).
  static constexpr std::size_t kPadding = 64;

  std::string_view view() const { return {buffer_.data(), size_}; }
  const char* data() const { return buffer_.data(); }
  std::size_t size() const { return size_; }
  // Bytes readable from data(): size() plus simdjson's padding.
  std::size_t capacity() const { return buffer_.size(); }
  // Offset of `slice` (a view into this text) from the start.
  std::size_t offsetOf(std::string_view slice) const { return static_cast<std::size_t>(slice.data() - buffer_.data()); }
  // The nesting limit the text was checked against.
  std::size_t maxDepth() const { return max_depth_; }

 private:
  JsonText() = default;
  std::string buffer_;
  std::size_t size_ = 0;
  std::size_t max_depth_ = 0;
};

}  // namespace qatfold
