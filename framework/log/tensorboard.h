// TensorBoard event files without protobuf (docs/formats.md, "TensorBoard event files"): TFRecord framing
// (u64 length, masked CRC32C of the length, payload, masked CRC32C of the payload) around
// hand-encoded Event messages: wall_time=1 (double), step=2 (varint), file_version=3,
// summary=5 { value=1 { tag=1, simple_value=2 (float) } }.
#pragma once
#include <cstdint>
#include <fstream>
#include <string>

namespace attnlab {

uint32_t crc32c(const void* data, size_t n);
uint32_t masked_crc32c(const void* data, size_t n);

/// Serialized Event payloads (exposed for the golden-bytes test).
std::string event_file_version(double wall_time);
std::string event_scalar(double wall_time, int64_t step, const std::string& tag, float value);
/// One TFRecord around a payload.
std::string tfrecord(const std::string& payload);

class EventWriter {
 public:
  /// Creates <dir>/events.out.tfevents.<unix seconds>.<host> and writes the version record.
  explicit EventWriter(const std::string& dir);
  void scalar(const std::string& tag, int64_t step, double value);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::ofstream out_;
};

}  // namespace attnlab
