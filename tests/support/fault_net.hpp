// Network faults through iptables, for tests that run inside scripts/in-netns.
//
// Every rule is added to the private, loopback-only namespace the test runs in and removed by
// the destructor (or heal()). The helpers refuse to touch iptables unless the process is inside
// the namespace that scripts/in-netns created ($REDLOCK_NETNS, checked against
// `ip netns identify`), so a fault test run by hand on a host never changes its firewall.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace redlock::test {

/// True when running inside the namespace created by scripts/in-netns.
bool in_private_netns();

/// One iptables rule in the filter table: added by the constructor (-A), removed by heal() or
/// the destructor (-D). Throws std::runtime_error if iptables fails or we are not in the
/// private namespace.
class iptables_rule {
 public:
  /// `spec` is the rule without -A/-D, e.g. {"INPUT", "-p", "tcp", "--dport", "6379", "-j",
  /// "DROP"}.
  explicit iptables_rule(std::vector<std::string> spec);
  ~iptables_rule();
  iptables_rule(const iptables_rule&) = delete;
  iptables_rule& operator=(const iptables_rule&) = delete;
  iptables_rule(iptables_rule&& other) noexcept;
  iptables_rule& operator=(iptables_rule&&) = delete;

  /// Removes the rule (idempotent).
  void heal();
  bool active() const noexcept { return active_; }

 private:
  std::vector<std::string> spec_;
  bool active_ = false;
};

enum class partition_mode {
  drop,    ///< packets to the port vanish: connects and requests hang until timeouts
  reject,  ///< packets to the port are answered with a TCP reset: fast failures
};

/// Cuts the server listening on `port` off from every client (INPUT --dport port).
iptables_rule partition(std::uint16_t port, partition_mode mode = partition_mode::drop);

/// Lets requests reach the server on `port` but drops its data-carrying replies
/// (OUTPUT --sport port --tcp-flags PSH PSH -j DROP): commands execute, answers are lost.
iptables_rule lose_replies(std::uint16_t port);

/// Runs a program (no shell, deadline 30 s) and returns its exit status as a shell reports
/// it (127: could not run). Its output goes to the test's stdout and stderr.
int run_program(const std::vector<std::string>& argv);

/// Counter of faults injected by the helpers in this process (rules, kills, pauses, clock
/// changes...), printed by the suite for the README's figures.
void count_fault(const char* kind);
std::uint64_t faults_injected();

}  // namespace redlock::test
