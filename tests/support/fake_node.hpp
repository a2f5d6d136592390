// A scripted node for tests: no server, answers on command.
//
// By default it behaves like a Redis server running the three lock scripts on an in-memory
// key store (no expiry). A test can push steps that override the next calls: answer with a
// reply, an error, after a delay (an asio timer), or never (until close()).
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <vector>

#include <asio/any_io_executor.hpp>

#include "redlock/node.hpp"

namespace redlock::test {

class fake_node final : public node, public std::enable_shared_from_this<fake_node> {
 public:
  enum class script_kind { acquire, extend, release, other };

  struct call {
    script_kind kind = script_kind::other;
    std::vector<std::string> keys;
    std::vector<std::string> args;
  };

  /// What to do with one call. `reply` is used when `ec` is empty; `never` leaves the
  /// handler pending until close().
  struct step {
    std::error_code ec;
    redlock::reply r;
    std::chrono::milliseconds delay{0};
    bool never = false;
    bool use_store = false;  ///< answer from the key store (the default behaviour)

    static step integer(long long v, std::chrono::milliseconds d = {});
    static step error(std::error_code ec, std::string message = {},
                      std::chrono::milliseconds d = {});
    static step silence();
    static step store(std::chrono::milliseconds d = {});
  };

  fake_node(asio::any_io_executor ex, std::string id);

  const std::string& id() const noexcept override { return id_; }
  void async_eval(const script& s, std::span<const std::string> keys,
                  std::span<const std::string> args, reply_handler handler) override;
  void close() override;
  /// Answers with the identities set by set_identity() (default: none, i.e. unknown).
  void async_identify(identity_handler handler) override;
  void set_identity(std::vector<std::string> ids);

  /// Steps for the next calls of a kind (FIFO); when none is queued, `fallback` applies.
  void push(script_kind kind, step s);
  /// The behaviour for calls without a queued step (default: step::store()).
  void set_fallback(script_kind kind, step s);

  std::vector<call> calls() const;
  std::size_t count(script_kind kind) const;
  bool closed() const;
  /// The key store: key -> value.
  std::map<std::string, std::string> store() const;
  void set_key(const std::string& key, const std::string& value);
  /// Forgets every key, like a restart without persistence.
  void clear_store();
  /// Requests whose handler has not run yet.
  std::size_t in_flight() const;
  /// in_flight() at the first close(), or -1 if never closed.
  long long in_flight_at_close() const;

 private:
  redlock::reply run_store(script_kind kind, const call& c);
  void deliver(reply_handler h, std::error_code ec, redlock::reply r,
               std::chrono::milliseconds delay);

  asio::any_io_executor ex_;
  std::vector<std::string> identity_;  // guarded by mutex_
  std::string id_;
  mutable std::mutex mutex_;
  std::map<script_kind, std::deque<step>> queued_;
  std::map<script_kind, step> fallback_;
  std::vector<call> calls_;
  std::vector<reply_handler> silent_;
  std::map<std::string, std::string> keys_;
  bool closed_ = false;
  std::size_t in_flight_ = 0;
  long long in_flight_at_close_ = -1;
};

/// `n` fake nodes named "<prefix>0", "<prefix>1", ... on `ex`. `fakes` is replaced by them
/// (for scripting answers and reading calls); the returned list is what a lock_manager takes.
inline std::vector<std::shared_ptr<node>> make_fake_nodes(
    const asio::any_io_executor& ex, std::size_t n, std::vector<std::shared_ptr<fake_node>>& fakes,
    const std::string& prefix = "fake") {
  fakes.clear();
  std::vector<std::shared_ptr<node>> nodes;
  for (std::size_t i = 0; i < n; ++i) {
    fakes.push_back(std::make_shared<fake_node>(ex, prefix + std::to_string(i)));
    nodes.push_back(fakes.back());
  }
  return nodes;
}

}  // namespace redlock::test
