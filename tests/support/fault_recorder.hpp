// Every lock value a client sent, whatever became of the operation: the handle of a failed or
// cancelled acquire carries no value, yet the acquire may have reached servers, so the "nothing
// left behind" checker (fault_leftovers.hpp) needs the values from the wire side.
//
//   auto log = std::make_shared<value_log>();
//   lock_manager m(ex, record_values(nodes, log), s);   // forwards everything unchanged
//   ... check_nothing_left_behind({{servers, log->values(), keys}}, ...);
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <unordered_set>
#include <vector>

#include "redlock/node.hpp"

namespace redlock::test {

/// The distinct values seen, in the order first seen. Thread-safe.
class value_log {
 public:
  void add(const std::string& value);
  std::vector<std::string> values() const;
  /// Values first seen at position `from` and later; for incremental readers.
  std::vector<std::string> values_from(std::size_t from) const;
  std::size_t size() const;

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> order_;
  std::unordered_set<std::string> seen_;
};

/// A node that records ARGV[1] of every script it is asked to run (the lock value, in every
/// script of the wire format) and forwards the call, identity, notifier (wake-up) and close to
/// `inner` unchanged.
class recording_node final : public node {
 public:
  recording_node(std::shared_ptr<node> inner, std::shared_ptr<value_log> log)
      : inner_(std::move(inner)), log_(std::move(log)) {}
  const std::string& id() const noexcept override { return inner_->id(); }
  void async_eval(const script& s, std::span<const std::string> keys,
                  std::span<const std::string> args, reply_handler handler) override {
    if (!args.empty())
      log_->add(args.front());
    inner_->async_eval(s, keys, args, std::move(handler));
  }
  void async_identify(identity_handler handler) override {
    inner_->async_identify(std::move(handler));
  }
  // Forwarded, or the manager would see a node without pub/sub and every waiting acquire of
  // the fault suite and the soak would poll instead of being woken.
  std::shared_ptr<notifier> open_notifier(notification_handler on_event) override {
    return inner_->open_notifier(std::move(on_event));
  }
  void close() override { inner_->close(); }
  const std::shared_ptr<node>& inner() const noexcept { return inner_; }

 private:
  std::shared_ptr<node> inner_;
  std::shared_ptr<value_log> log_;
};

/// Wraps every node in a recording_node writing to `log`.
std::vector<std::shared_ptr<node>> record_values(std::vector<std::shared_ptr<node>> nodes,
                                                 const std::shared_ptr<value_log>& log);

}  // namespace redlock::test
