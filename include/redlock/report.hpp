// What happened on each node: returned with every lock, extend and unlock result.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <system_error>
#include <vector>

namespace redlock {

/// How one node answered one request of an attempt.
enum class vote {
  pending,  ///< no answer yet when the outcome was decided (the node was not waited for)
  granted,  ///< did what we asked (acquired, extended or released all keys)
  denied,   ///< answered, but another value holds a key (or our value is missing)
  error,    ///< error reply or connection failure; see ec and message
  timeout,  ///< no answer within the per-node request timeout
};

const char* to_string(vote v) noexcept;

struct node_result {
  std::string node;  ///< the node's id(), never with a password
  vote outcome = vote::pending;
  std::error_code ec;                    ///< for error and timeout
  std::string message;                   ///< the server's error message, if any
  std::chrono::microseconds latency{0};  ///< request to reply (or to the decision)
};

/// The report of an operation: how many attempts were made and what each node said in
/// the last one. Only the last attempt is kept so that unlimited retries use bounded memory.
struct report {
  int attempts = 0;
  std::size_t quorum = 0;
  std::vector<node_result> nodes;  ///< last attempt, one entry per node, in manager order

  std::size_t count(vote v) const noexcept;
  /// One line per node, e.g. "redis://127.0.0.1:7001/0: denied (0.21 ms)". No secrets.
  std::string to_string() const;
};

}  // namespace redlock
