// What happened on each node: returned with every lock, extend and unlock result.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>
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

/// A node's id() as stored in reports. It shares the node's own string (and keeps the node
/// object alive) instead of copying it: a held lock carries one report entry per node, and a
/// copied id (~25 characters, past the small-string buffer) was the largest part of a held
/// lock's memory at N = 5. Reads like a const std::string.
/// Thread safety: distinct objects safe; shared objects safe for const use.
class node_id {
 public:
  node_id() = default;
  /// Owns a copy of `id` (for reports not built from a node).
  explicit node_id(std::string id) : s_(std::make_shared<const std::string>(std::move(id))) {}
  /// Shares an existing string, e.g. the aliasing shared_ptr of a node and its id().
  explicit node_id(std::shared_ptr<const std::string> id) noexcept : s_(std::move(id)) {}

  /// The id, or an empty string for a default-constructed node_id.
  const std::string& str() const noexcept { return s_ ? *s_ : empty(); }
  operator const std::string&() const noexcept { return str(); }  // NOLINT: reads as a string
  bool empty_id() const noexcept { return str().empty(); }

  friend bool operator==(const node_id& a, std::string_view b) noexcept { return a.str() == b; }
  friend bool operator==(const node_id& a, const node_id& b) noexcept { return a.str() == b.str(); }
  friend std::ostream& operator<<(std::ostream& os, const node_id& id) { return os << id.str(); }

 private:
  static const std::string& empty() noexcept {
    static const std::string e;
    return e;
  }
  std::shared_ptr<const std::string> s_;
};

struct node_result {
  node_id node;  ///< the node's id(), never with a password
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
  /// Why the operation was refused before anything was sent, naming the argument or the
  /// nodes, e.g. "resources[1] is empty" or "nodes 1 (redis://localhost:6379/0) and 2
  /// (redis://127.0.0.1:6379/0) are the same deployment (run_id:3f0c...)". Empty otherwise.
  std::string detail;

  std::size_t count(vote v) const noexcept;
  /// One line per node, e.g. "redis://127.0.0.1:7001/0: denied (0.21 ms)". No secrets.
  std::string to_string() const;
};

}  // namespace redlock
