// The scripted node of the unit tests: redlock::testing::fake_node (the kit users get) with
// its own fake_server, plus the server's scripting and inspection calls on the node itself,
// so a test drives one object per node. One fake for users and for our tests.
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <asio/any_io_executor.hpp>

#include "redlock/testing.hpp"

namespace redlock::test {

class fake_node final : public redlock::testing::fake_node {
 public:
  using script_kind = redlock::testing::script_kind;
  using call = redlock::testing::call;
  using step = redlock::testing::step;

  /// A node over a server of its own. Its store has no expiry unless the test advances the
  /// server's clock (server().clock()).
  fake_node(asio::any_io_executor ex, std::string id)
      : redlock::testing::fake_node(std::move(ex), std::move(id)) {}

  void push(script_kind kind, step s) { server().push(kind, std::move(s)); }
  void set_fallback(script_kind kind, step s) { server().set_fallback(kind, std::move(s)); }
  std::vector<call> calls() const { return const_server().calls(); }
  std::size_t count(script_kind kind) const { return const_server().count(kind); }
  /// The key store: key -> value.
  std::map<std::string, std::string> store() const { return const_server().store(); }
  void set_key(const std::string& key, const std::string& value) { server().set_key(key, value); }
  /// Forgets every key, like a restart without persistence.
  void clear_store() { server().lose_keys(); }

 private:
  const redlock::testing::fake_server& const_server() const { return *shared_server(); }
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
