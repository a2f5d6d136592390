// The command line both CLI suites run the `redlock` binary with.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "support/redis_server.hpp"

namespace redlock::test {

/// argv for `binary`: the subcommand (args[0]), `--server` for each of `servers`, a generous
/// `--request-timeout` (CI runs these beside other suites and under sanitizers), then the rest
/// of `args`. No args: the binary alone.
inline std::vector<std::string> cli_argv(const std::string& binary,
                                         const std::vector<std::unique_ptr<redis_server>>& servers,
                                         const std::vector<std::string>& args) {
  std::vector<std::string> argv{binary};
  if (args.empty())
    return argv;
  argv.push_back(args.front());
  for (const auto& s : servers) {
    argv.emplace_back("--server");
    argv.push_back(s->url());
  }
  argv.emplace_back("--request-timeout");
  argv.emplace_back("1s");
  argv.insert(argv.end(), args.begin() + 1, args.end());
  return argv;
}

}  // namespace redlock::test
