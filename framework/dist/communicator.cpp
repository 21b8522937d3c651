#include "framework/dist/communicator.h"

#include "framework/dist/nccl_backend.h"

#include <ATen/ops/empty.h>
#include <fmt/format.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <algorithm>
#include <cstdlib>
#include <stdexcept>

namespace attnlab {

struct Communicator::Groups {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;
};

void CommStats::add(const std::string& what, int64_t n) {
  bytes[what] += n;
  calls[what] += 1;
}

namespace {

int64_t nbytes(const at::Tensor& t) { return t.numel() * static_cast<int64_t>(t.element_size()); }

// torch's errors carry a C++ backtrace in what(); users need the sentence.
std::string message_of(const std::exception& e) {
  if (const auto* c = dynamic_cast<const c10::Error*>(&e)) return c->what_without_backtrace();
  return e.what();
}

uint16_t parse_port(const std::string& text) {
  char* end = nullptr;
  const long p = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || p < 1 || p > 65535)
    throw std::invalid_argument("MASTER_PORT='" + text + "' is not a port number (1..65535)");
  return static_cast<uint16_t>(p);
}

// Rendezvous (docs/parallelism.md): under torchrun's agent every rank is a client; otherwise
// rank 0 listens. Keys of each restart attempt live under their own prefix.
c10::intrusive_ptr<c10d::Store> join_store(const World& w, std::chrono::milliseconds timeout) {
  if (w.master_addr.empty() || w.master_port.empty())
    throw std::invalid_argument(fmt::format("a {}-process job needs MASTER_ADDR and MASTER_PORT", w.world_size));
  c10d::TCPStoreOptions o;
  o.port = parse_port(w.master_port);
  o.isServer = !w.agent_store && w.rank == 0;
  o.numWorkers = w.agent_store ? std::nullopt : std::optional<std::size_t>(w.world_size);
  o.waitWorkers = !w.agent_store;
  o.timeout = timeout;
  c10::intrusive_ptr<c10d::Store> store;
  try {
    store = c10::make_intrusive<c10d::TCPStore>(w.master_addr, o);
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("rank {}: cannot {} the store at {}:{} within {} s: {}", w.rank,
                                         o.isServer ? "host" : "reach", w.master_addr, w.master_port,
                                         timeout.count() / 1000, message_of(e)));
  }
  const std::string attempt = (w.agent_store ? "/worker/attempt_" : "attnlab/attempt_") +
                              std::to_string(w.restart_count);
  return c10::make_intrusive<c10d::PrefixStore>(attempt, store);
}

// The network Gloo binds (docs/parallelism.md): GLOO_SOCKET_IFNAME names an interface; else
// ATTNLAB_GLOO_HOSTNAME an address of this host; else loopback when the master is on loopback
// (a single machine); else the address this host's name resolves to.
std::shared_ptr<gloo::transport::Device> gloo_device(const World& w) {
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname)
    return c10d::ProcessGroupGloo::createDeviceForInterface(ifname);
  if (const char* host = std::getenv("ATTNLAB_GLOO_HOSTNAME"); host && *host)
    return c10d::ProcessGroupGloo::createDeviceForHostname(host);
  if (w.master_addr == "localhost" || w.master_addr.rfind("127.", 0) == 0)
    return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

// A failed collective almost always means another rank died, hung past parallel.timeout_s, or
// cannot be reached; the backend's own message alone (a socket error) does not say so.
void wait_for(const c10::intrusive_ptr<c10d::Work>& work, const char* op, int64_t rank, const std::string& backend) {
  try {
    work->wait();
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("rank {}: {} over {} failed: another rank has died, hung past "
                                         "parallel.timeout_s, or cannot be reached (its launcher names it): {}",
                                         rank, op, backend, message_of(e)));
  }
}

c10d::ReduceOp to_c10d(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return c10d::ReduceOp::SUM;
    case ReduceOp::max: return c10d::ReduceOp::MAX;
    case ReduceOp::min: return c10d::ReduceOp::MIN;
  }
  return c10d::ReduceOp::SUM;
}

}  // namespace

Communicator::Communicator(const World& world, CommOptions opts)
    : rank_(world.rank), size_(world.world_size), backend_(opts.backend), world_(world), timeout_(opts.timeout) {
  if (size_ == 1) return;
  if (opts.backend != "gloo" && opts.backend != "nccl")
    throw std::invalid_argument("communicator backend '" + opts.backend + "': expected gloo or nccl");
  groups_ = std::make_unique<Groups>();
  groups_->store = join_store(world, opts.timeout);
  groups_->backend = make_backend(groups_->store, rank_, size_);
}

// The process group of this communicator's ranks, below its store (each group its own prefix).
c10::intrusive_ptr<c10d::Backend> Communicator::make_backend(const c10::intrusive_ptr<c10d::Store>& store,
                                                             int64_t rank, int64_t size) const {
  auto prefixed = c10::make_intrusive<c10d::PrefixStore>(backend_, store);
  if (backend_ == "nccl") return make_nccl_backend(prefixed, rank, size, timeout_);
  auto o = c10d::ProcessGroupGloo::Options::create();
  o->devices.push_back(gloo_device(world_));
  o->timeout = timeout_;
  return c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, static_cast<int>(rank), static_cast<int>(size), o);
}

Communicator::~Communicator() = default;

std::unique_ptr<Communicator> Communicator::subgroup(const std::vector<int64_t>& ranks, const std::string& name) const {
  auto it = std::find(ranks.begin(), ranks.end(), rank_);
  if (it == ranks.end())
    throw std::invalid_argument(fmt::format("subgroup {}: rank {} is not a member", name, rank_));
  std::unique_ptr<Communicator> g(new Communicator());
  g->rank_ = it - ranks.begin();
  g->size_ = static_cast<int64_t>(ranks.size());
  g->backend_ = backend_;
  g->world_ = world_;
  g->timeout_ = timeout_;
  if (g->size_ == 1) return g;
  g->groups_ = std::make_unique<Groups>();
  g->groups_->store = c10::make_intrusive<c10d::PrefixStore>("group/" + name, groups_->store);
  g->groups_->backend = make_backend(g->groups_->store, g->rank_, g->size_);
  return g;
}

c10d::Store* Communicator::store() const { return groups_ ? groups_->store.get() : nullptr; }

void Communicator::all_reduce(at::Tensor& t, ReduceOp op) { all_reduce_async(t, op).wait(); }

Pending Communicator::all_reduce_async(at::Tensor& t, ReduceOp op) {
  stats_.add("all_reduce", nbytes(t));
  if (size_ == 1) return {};
  std::vector<at::Tensor> ts{t};
  c10d::AllreduceOptions o;
  o.reduceOp = to_c10d(op);
  auto work = groups_->backend->allreduce(ts, o);
  return Pending([work, r = rank_, b = backend_] { wait_for(work, "all_reduce", r, b); });
}

void Communicator::broadcast(at::Tensor& t, int64_t root) {
  stats_.add("broadcast", nbytes(t));
  if (size_ == 1) return;
  std::vector<at::Tensor> ts{t};
  c10d::BroadcastOptions o;
  o.rootRank = root;
  wait_for(groups_->backend->broadcast(ts, o), "broadcast", rank_, backend_);
}

std::vector<at::Tensor> Communicator::all_gather(const at::Tensor& in) {
  stats_.add("all_gather", nbytes(in));
  if (size_ == 1) return {in.clone()};
  std::vector<std::vector<at::Tensor>> out(1);
  for (int64_t r = 0; r < size_; ++r) out[0].push_back(at::empty_like(in));
  std::vector<at::Tensor> ins{in.contiguous()};
  wait_for(groups_->backend->allgather(out, ins), "all_gather", rank_, backend_);
  return out[0];
}

at::Tensor Communicator::reduce_scatter(const at::Tensor& in) {
  at::Tensor flat = in.contiguous();
  at::Tensor out = at::empty({in.dim() == 1 ? in.numel() / size_ : 0}, in.options());
  reduce_scatter_async(flat, out).wait();
  return out;
}

Pending Communicator::reduce_scatter_async(at::Tensor& in, at::Tensor& out) {
  if (in.dim() != 1 || in.numel() % size_ != 0 || !in.is_contiguous() || out.dim() != 1 ||
      out.numel() * size_ != in.numel())
    throw std::invalid_argument(fmt::format("reduce_scatter: input {} must be flat and contiguous with {} x the "
                                            "output's {} elements",
                                            c10::str(in.sizes()), size_, c10::str(out.sizes())));
  stats_.add("reduce_scatter", nbytes(in));
  if (size_ == 1) {
    out.copy_(in);
    return {};
  }
  auto work = groups_->backend->_reduce_scatter_base(out, in);
  return Pending([work, r = rank_, b = backend_] { wait_for(work, "reduce_scatter", r, b); });
}

void Communicator::all_gather_into(at::Tensor& in, at::Tensor& out) {
  if (!in.is_contiguous() || !out.is_contiguous() || out.numel() != in.numel() * size_)
    throw std::invalid_argument(fmt::format("all_gather_into: output {} must hold {} x the input's {} elements",
                                            c10::str(out.sizes()), size_, c10::str(in.sizes())));
  stats_.add("all_gather", nbytes(in));
  if (size_ == 1) {
    out.view(in.sizes()).copy_(in);
    return;
  }
  at::Tensor flat_out = out.view({-1}), flat_in = in.view({-1});
  wait_for(groups_->backend->_allgather_base(flat_out, flat_in), "all_gather", rank_, backend_);
}

void Communicator::all_to_all(at::Tensor& in, at::Tensor& out) {
  if (!in.is_contiguous() || !out.is_contiguous() || out.sizes() != in.sizes() || in.size(0) % size_ != 0)
    throw std::invalid_argument(fmt::format("all_to_all: input {} and output {} must be contiguous, of one shape, "
                                            "and split into {} blocks along dim 0",
                                            c10::str(in.sizes()), c10::str(out.sizes()), size_));
  stats_.add("all_to_all", nbytes(in));
  if (size_ == 1) {
    out.copy_(in);
    return;
  }
  std::vector<int64_t> equal;  // empty split sizes: equal blocks
  wait_for(groups_->backend->alltoall_base(out, in, equal, equal), "all_to_all", rank_, backend_);
}

void Communicator::send(at::Tensor& t, int64_t dst, int tag) {
  stats_.add("send", nbytes(t));
  if (size_ == 1) throw std::invalid_argument("send: a one-process world has no peer");
  std::vector<at::Tensor> ts{t};
  wait_for(groups_->backend->send(ts, static_cast<int>(dst), tag), "send", rank_, backend_);
}

void Communicator::recv(at::Tensor& t, int64_t src, int tag) {
  stats_.add("recv", nbytes(t));
  if (size_ == 1) throw std::invalid_argument("recv: a one-process world has no peer");
  std::vector<at::Tensor> ts{t};
  wait_for(groups_->backend->recv(ts, static_cast<int>(src), tag), "recv", rank_, backend_);
}

void Communicator::exchange(at::Tensor& out, int64_t dst, at::Tensor& in, int64_t src, int tag) {
  if (size_ == 1) throw std::invalid_argument("exchange: a one-process world has no peer");
  c10::intrusive_ptr<c10d::Work> sent, received;
  std::vector<at::Tensor> outs{out}, ins{in};
  if (dst >= 0) stats_.add("send", nbytes(out)), sent = groups_->backend->send(outs, static_cast<int>(dst), tag);
  if (src >= 0) stats_.add("recv", nbytes(in)), received = groups_->backend->recv(ins, static_cast<int>(src), tag);
  if (sent) wait_for(sent, "send", rank_, backend_);
  if (received) wait_for(received, "recv", rank_, backend_);
}

void Communicator::barrier() {
  stats_.add("barrier", 0);
  if (size_ == 1) return;
  wait_for(groups_->backend->barrier(), "barrier", rank_, backend_);
}

}  // namespace attnlab
