#include "support/fault_net.hpp"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "support/process.hpp"

namespace redlock::test {

namespace {

std::atomic<std::uint64_t> fault_counter{0};

std::string read_command_output(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr)
    return out;
  char buf[256];
  while (std::fgets(buf, sizeof buf, p) != nullptr)
    out += buf;
  pclose(p);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' '))
    out.pop_back();
  return out;
}

void require_private_netns() {
  if (!in_private_netns())
    throw std::runtime_error(
        "refusing to change iptables outside the private namespace: run this test through "
        "scripts/in-netns");
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& a : v)
    s += (s.empty() ? "" : " ") + a;
  return s;
}

}  // namespace

bool in_private_netns() {
  const char* ns = std::getenv("REDLOCK_NETNS");
  if (ns == nullptr || *ns == '\0')
    return false;
  // `ip netns identify` names the namespace of a PID by comparing namespace inodes.
  const std::string who =
      read_command_output("ip netns identify " + std::to_string(getpid()) + " 2>/dev/null");
  return who == ns;
}

int run_program(const std::vector<std::string>& argv) {
  process_options o;
  o.out = process_options::output::inherit;  // its messages next to the test's own
  return run_to_end(argv, std::move(o)).code;
}

iptables_rule::iptables_rule(std::vector<std::string> spec) : spec_(std::move(spec)) {
  require_private_netns();
  std::vector<std::string> argv{"iptables", "-w", "5", "-A"};
  argv.insert(argv.end(), spec_.begin(), spec_.end());
  if (run_program(argv) != 0)
    throw std::runtime_error("iptables failed: " + join(argv));
  active_ = true;
  count_fault("iptables");
}

iptables_rule::iptables_rule(iptables_rule&& other) noexcept
    : spec_(std::move(other.spec_)), active_(other.active_) {
  other.active_ = false;
}

iptables_rule::~iptables_rule() {
  heal();
}

void iptables_rule::heal() {
  if (!active_)
    return;
  active_ = false;
  std::vector<std::string> argv{"iptables", "-w", "5", "-D"};
  argv.insert(argv.end(), spec_.begin(), spec_.end());
  if (run_program(argv) != 0)
    std::fprintf(stderr, "warning: %s failed\n", join(argv).c_str());
}

iptables_rule partition(std::uint16_t port, partition_mode mode) {
  std::vector<std::string> spec{"INPUT", "-p", "tcp", "--dport", std::to_string(port), "-j"};
  if (mode == partition_mode::drop) {
    spec.push_back("DROP");
  } else {
    spec.insert(spec.end(), {"REJECT", "--reject-with", "tcp-reset"});
  }
  return iptables_rule(std::move(spec));
}

iptables_rule lose_replies(std::uint16_t port) {
  return iptables_rule({"OUTPUT", "-p", "tcp", "--sport", std::to_string(port), "--tcp-flags",
                        "PSH", "PSH", "-j", "DROP"});
}

void count_fault(const char*) {
  ++fault_counter;
}
std::uint64_t faults_injected() {
  return fault_counter.load();
}

}  // namespace redlock::test
