// Two nodes for real on one machine: two network namespaces joined by a veth pair, one
// `attnlab launch --nnodes 2 --node-rank {0,1}` inside each, Gloo over the veth (GLOO_SOCKET_IFNAME),
// training the curve of one rank. Where namespaces cannot be made (no root, no iproute2) the test
// says why and runs the nodes on two loopback addresses instead (each node's Gloo bound to its own
// address), never as one node. The namespaces are deleted and the processes ended by pid.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>

#include "tests/dist/job.h"

namespace attnlab {
namespace {

// Two namespaces A and B and a veth pair between them, 10.213.0.1 in A and 10.213.0.2 in B
// (the addresses exist only inside the namespaces).
struct NetworkNamespaces {
  std::string ip, a, b, veth_a, veth_b, why_not;
  bool ok = false;
  NetworkNamespaces() {
    for (const char* path : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"})
      if (::access(path, X_OK) == 0) ip = path;
    if (ip.empty()) {
      why_not = "no `ip` (iproute2)";
      return;
    }
    const std::string id = std::to_string(::getpid());
    a = "attnlab-" + id + "-a", b = "attnlab-" + id + "-b";
    veth_a = "al" + id + "a", veth_b = "al" + id + "b";  // at most 15 characters
    for (const std::string& cmd :
         {fmt::format("ip netns add {}", a), fmt::format("ip netns add {}", b),
          fmt::format("ip link add {} type veth peer name {}", veth_a, veth_b),
          fmt::format("ip link set {} netns {}", veth_a, a), fmt::format("ip link set {} netns {}", veth_b, b),
          fmt::format("ip -n {} addr add 10.213.0.1/24 dev {}", a, veth_a),
          fmt::format("ip -n {} addr add 10.213.0.2/24 dev {}", b, veth_b),
          fmt::format("ip -n {} link set {} up", a, veth_a), fmt::format("ip -n {} link set {} up", b, veth_b),
          fmt::format("ip -n {} link set lo up", a), fmt::format("ip -n {} link set lo up", b),
          // Some containers can make namespaces but not enter them (ip netns exec remounts /sys).
          fmt::format("ip netns exec {} true", a)}) {
      if (std::system((ip + cmd.substr(2) + " 2>/dev/null").c_str()) != 0) {
        why_not = "`" + cmd + "` failed";
        return;
      }
    }
    ok = true;
  }
  ~NetworkNamespaces() {  // deleting a namespace removes its end of the veth, and so the pair
    if (ip.empty()) return;
    // The pair is still in this namespace if setup failed before moving it.
    std::system(fmt::format("{0} link del {1} 2>/dev/null; {0} netns del {2} 2>/dev/null; {0} netns del {3} 2>/dev/null",
                            ip, veth_a, a, b).c_str());
  }
};

struct Node {
  std::vector<std::string> prefix;  ///< `ip netns exec NS` or nothing
  std::map<std::string, std::string> env;
};

// Runs both nodes of a 2 x 1 job with master `master`; returns rank 0's node log.
std::string run_two_nodes(const Job& j, const std::string& name, const std::string& master, const Node nodes[2]) {
  const std::string port = std::to_string(free_loopback_port());
  std::vector<Child> kids;
  for (int node = 0; node < 2; ++node) {
    std::vector<std::string> argv = nodes[node].prefix;
    for (const std::string& a : {std::string(ATTNLAB_BIN), std::string("launch"), std::string("--nnodes"), std::string("2"),
                                 std::string("--node-rank"), std::to_string(node), std::string("--nproc-per-node"),
                                 std::string("1"), std::string("--master-addr"), master, std::string("--master-port"),
                                 port, std::string("--")})
      argv.push_back(a);
    for (const auto& a : j.train_args(name, {"train.steps=6", "train.batch_size=2"})) argv.push_back(a);
    kids.push_back(spawn(argv, nodes[node].env, j.dir + "/" + name + "-node" + std::to_string(node) + ".log"));
  }
  const auto codes = wait_all(kids, std::chrono::seconds(180));
  for (int node = 0; node < 2; ++node)
    EXPECT_EQ(codes[node], 0) << "node " << node << ":\n" << testing::read_file(kids[node].log);
  // Rank 1 is quiet (rank 0 logs); its node must simply succeed, which it cannot without rank 0.
  EXPECT_EQ(testing::read_file(kids[1].log).find("error"), std::string::npos) << testing::read_file(kids[1].log);
  return testing::read_file(kids[0].log);
}

Node loopback_node(int node) { return {{}, {{"ATTNLAB_GLOO_HOSTNAME", "127.0.0." + std::to_string(2 + node)}}}; }

TEST(MultiNode, TwoNetworkNamespacesOverAVethPairTrainLikeOneRank) {
  Job j;
  std::string log;
  ASSERT_EQ(j.run(0, "single", {"train.steps=6", "train.batch_size=4"}, &log), 0) << log;
  NetworkNamespaces ns;
  if (ns.ok) {
    const Node nodes[2] = {{{ns.ip, "netns", "exec", ns.a}, {{"GLOO_SOCKET_IFNAME", ns.veth_a}}},
                           {{ns.ip, "netns", "exec", ns.b}, {{"GLOO_SOCKET_IFNAME", ns.veth_b}}}};
    log = run_two_nodes(j, "nodes", "10.213.0.1", nodes);
  } else {
    std::printf("network namespaces unavailable (%s): the two nodes run on 127.0.0.2 and 127.0.0.3\n",
                ns.why_not.c_str());
    const Node nodes[2] = {loopback_node(0), loopback_node(1)};
    log = run_two_nodes(j, "nodes", "127.0.0.2", nodes);
  }
  EXPECT_NE(log.find("data parallel: 2 ranks"), std::string::npos) << log;
  expect_same_curve(j.values("single", "train/loss"), j.values("nodes", "train/loss"), 1e-5, "two nodes");
}

TEST(MultiNode, TwoLoopbackAddressesTrainLikeOneRank) {
  // Node 0 on 127.0.0.2 hosts the store; each node's Gloo binds its own address.
  Job j;
  std::string log;
  ASSERT_EQ(j.run(0, "single", {"train.steps=6", "train.batch_size=4"}, &log), 0) << log;
  const Node nodes[2] = {loopback_node(0), loopback_node(1)};
  log = run_two_nodes(j, "nodes", "127.0.0.2", nodes);
  EXPECT_NE(log.find("data parallel: 2 ranks"), std::string::npos) << log;
  expect_same_curve(j.values("single", "train/loss"), j.values("nodes", "train/loss"), 1e-5, "two loopback nodes");
}

}  // namespace
}  // namespace attnlab
