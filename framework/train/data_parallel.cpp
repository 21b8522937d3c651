#include "framework/train/data_parallel.h"

#include <ATen/ops/tensor.h>
#include <fmt/format.h>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include "framework/config/config_error.h"
#include "framework/util/hash.h"

namespace attnlab {

std::string comm_backend(const ParallelConfig& cfg, c10::Device device) {
  const std::string b = cfg.backend == "auto" ? (device.is_cuda() ? "nccl" : "gloo") : cfg.backend;
  if (b == "nccl" && !device.is_cuda())
    throw ConfigError({"config: parallel.backend: nccl moves CUDA tensors, but train.device is the CPU; use gloo or auto"});
  if (b == "gloo" && device.is_cuda())
    throw ConfigError({"config: parallel.backend: gloo here moves CPU tensors only, but train.device is cuda; use nccl or auto"});
  if (b == "nccl" && !nccl_available())
    throw ConfigError({"config: parallel.backend: this attnlab was built without CUDA, so it has no NCCL (docs/build.md)"});
  return b;
}

void DataParallel::check_same_config(const std::string& config_hash) {
  c10d::Store& store = *comm_.store();
  store.set("config_hash/" + std::to_string(comm_.rank()),
            std::vector<uint8_t>(config_hash.begin(), config_hash.end()));
  const auto first = store.get("config_hash/0");
  const std::string rank0(first.begin(), first.end());
  if (rank0 != config_hash)
    throw ConfigError({fmt::format("rank {} built config {} but rank 0 built {}: every rank must run the "
                                   "same recipe and --set overrides",
                                   comm_.rank(), config_hash, rank0)});
}

void DataParallel::sync_parameters(const std::vector<at::Tensor>& params) {
  at::NoGradGuard no_grad;
  for (const auto& p : params) {
    at::Tensor t = p.detach();
    comm_.broadcast(t, 0);
  }
  // Every rank's XXH64 of its parameter bytes, compared through a max and a min.
  uint64_t h = 0;
  for (const auto& p : params) {
    at::Tensor c = p.detach().to(at::kCPU).contiguous();
    h = xxh64(c.data_ptr(), static_cast<size_t>(c.numel() * c.element_size()), h);
  }
  at::Tensor hi = at::tensor({static_cast<int64_t>(h >> 1)}, at::kLong), lo = hi.clone();
  comm_.all_reduce(hi, ReduceOp::max);
  comm_.all_reduce(lo, ReduceOp::min);
  if (!hi.equal(lo))
    throw std::runtime_error(fmt::format("rank {}: parameters differ across ranks after the broadcast "
                                         "from rank 0", comm_.rank()));
}

void DataParallel::mean(at::Tensor& t) {
  comm_.all_reduce(t);
  t.div_(static_cast<double>(comm_.size()));
}

bool DataParallel::any(bool flag) {
  at::Tensor t = at::tensor({static_cast<int64_t>(flag)}, at::kLong);
  comm_.all_reduce(t, ReduceOp::max);
  return t.item<int64_t>() != 0;
}

}  // namespace attnlab
