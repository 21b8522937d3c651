#include "framework/log/tensorboard.h"

#include <unistd.h>

#include <array>
#include <chrono>
#include <cstring>
#include <stdexcept>

namespace attnlab {
namespace {

std::array<uint32_t, 256> make_crc_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;  // Castagnoli
    t[i] = c;
  }
  return t;
}

void put_varint(std::string& s, uint64_t v) {
  while (v >= 0x80) s.push_back(static_cast<char>((v & 0x7F) | 0x80)), v >>= 7;
  s.push_back(static_cast<char>(v));
}
template <class T>
void put_raw(std::string& s, T v) {
  s.append(reinterpret_cast<const char*>(&v), sizeof(T));
}
void put_bytes(std::string& s, uint8_t tag, const std::string& bytes) {
  s.push_back(static_cast<char>(tag));
  put_varint(s, bytes.size());
  s += bytes;
}
double now() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

}  // namespace

uint32_t crc32c(const void* data, size_t n) {
  static const auto table = make_crc_table();
  uint32_t c = 0xFFFFFFFFu;
  auto p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

uint32_t masked_crc32c(const void* data, size_t n) {
  const uint32_t c = crc32c(data, n);
  return ((c >> 15) | (c << 17)) + 0xA282EAD8u;
}

std::string event_file_version(double wall_time) {
  std::string e;
  e.push_back(0x09), put_raw(e, wall_time);
  put_bytes(e, 0x1A, "brain.Event:2");
  return e;
}

std::string event_scalar(double wall_time, int64_t step, const std::string& tag, float value) {
  std::string val;
  put_bytes(val, 0x0A, tag);
  val.push_back(0x15), put_raw(val, value);
  std::string summary;
  put_bytes(summary, 0x0A, val);
  std::string e;
  e.push_back(0x09), put_raw(e, wall_time);
  e.push_back(0x10), put_varint(e, static_cast<uint64_t>(step));
  put_bytes(e, 0x2A, summary);
  return e;
}

std::string tfrecord(const std::string& payload) {
  std::string r;
  const uint64_t len = payload.size();
  put_raw(r, len);
  put_raw(r, masked_crc32c(&len, 8));
  r += payload;
  put_raw(r, masked_crc32c(payload.data(), payload.size()));
  return r;
}

EventWriter::EventWriter(const std::string& dir) {
  char host[256] = "localhost";
  ::gethostname(host, sizeof(host) - 1);
  const double t = now();
  path_ = dir + "/events.out.tfevents." + std::to_string(static_cast<int64_t>(t)) + "." + host;
  out_.open(path_, std::ios::binary | std::ios::app);
  if (!out_) throw std::runtime_error(path_ + ": cannot create event file");
  out_ << tfrecord(event_file_version(t)) << std::flush;
}

void EventWriter::scalar(const std::string& tag, int64_t step, double value) {
  out_ << tfrecord(event_scalar(now(), step, tag, static_cast<float>(value))) << std::flush;
}

}  // namespace attnlab
