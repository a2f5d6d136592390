// A fault-injecting TCP proxy for tests: listens on 127.0.0.1, forwards to an upstream port,
// and can add latency, swallow traffic, or reset connections on command.
//
//   redlock::test::tcp_proxy slow(server.port(), {.delay = 20ms});
//   redlock::lock_manager m(ex, {"redis://127.0.0.1:" + std::to_string(slow.port()), ...});
//
// It runs its own io thread; every setter may be called from any thread and applies to data
// read after the call (data already queued keeps its schedule). Latency is added per chunk
// and preserves order; it does not limit throughput.
// Distinct objects: safe. Shared objects: safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace redlock::test {

struct proxy_options {
  /// Added to everything sent from the client to the server, so every request/reply round
  /// trip takes this much longer ("a 20 ms slow node").
  std::chrono::milliseconds delay{0};
  /// Added to everything sent from the server back to the client (on top of `delay`).
  std::chrono::milliseconds reply_delay{0};
};

class tcp_proxy {
 public:
  /// Starts listening at once (throws std::system_error if it cannot bind).
  explicit tcp_proxy(std::uint16_t upstream_port, proxy_options opts = {});
  /// Resets every connection and joins the io thread.
  ~tcp_proxy();
  tcp_proxy(const tcp_proxy&) = delete;
  tcp_proxy& operator=(const tcp_proxy&) = delete;

  /// The port to connect to instead of the upstream one (127.0.0.1).
  std::uint16_t port() const noexcept;

  void set_delay(std::chrono::milliseconds to_server, std::chrono::milliseconds to_client);
  /// Silently discards everything in both directions while on; connections stay open, new
  /// ones are accepted but go nowhere (a partition as the client sees it: no answers).
  void set_blackhole(bool on);
  /// Forwards requests but discards the server's replies while on: the request executes, the
  /// client never learns the outcome.
  void set_drop_replies(bool on);
  /// Closes every current connection with a TCP reset (SO_LINGER 0). Blocks until done.
  void reset_all();
  /// While on, new connections are reset as soon as they are accepted.
  void set_refuse(bool on);

  /// Connections accepted so far (including refused ones).
  std::size_t accepted() const noexcept;
  /// Bytes delivered to the server / to the client so far.
  std::size_t bytes_to_server() const noexcept;
  std::size_t bytes_to_client() const noexcept;

  struct state;

 private:
  std::shared_ptr<state> state_;
};

}  // namespace redlock::test
