#include "support/tcp_proxy.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <array>
#include <atomic>
#include <deque>
#include <future>
#include <list>
#include <thread>
#include <vector>

#include "redlock/asio_compat.hpp"

namespace redlock::test {

namespace {

using asio::ip::tcp;
using clock_type = std::chrono::steady_clock;
constexpr auto use_tuple = redlock::as_tuple(asio::use_awaitable);

struct chunk {
  clock_type::time_point due;
  std::vector<char> bytes;
};

// One direction of one connection: a reader that stamps each chunk with its due time and a
// writer that delivers chunks in order once due. Split in two so that a delay adds latency
// without throttling the reader.
struct pipe_state {
  std::deque<chunk> queue;
  asio::steady_timer wake;
  bool closed = false;
  explicit pipe_state(asio::io_context& io) : wake(io, clock_type::time_point::max()) {}
};

}  // namespace

struct session;

struct tcp_proxy::state : std::enable_shared_from_this<tcp_proxy::state> {
  asio::io_context io;
  tcp::acceptor acceptor{io};
  std::uint16_t upstream_port = 0;
  std::atomic<std::int64_t> delay_to_server_ms{0};
  std::atomic<std::int64_t> delay_to_client_ms{0};
  std::atomic<bool> blackhole{false};
  std::atomic<bool> drop_replies{false};
  std::atomic<bool> refuse{false};
  std::atomic<std::size_t> accepted{0};
  std::atomic<std::size_t> to_server{0};
  std::atomic<std::size_t> to_client{0};
  std::list<std::weak_ptr<session>> sessions;  // io thread only
  std::thread thread;
};

namespace {

void hard_reset(tcp::socket& s) {
  asio::error_code ignored;
  if (!s.is_open())
    return;
  s.set_option(asio::socket_base::linger(true, 0), ignored);
  s.close(ignored);
}

}  // namespace

struct session : std::enable_shared_from_this<session> {
  std::shared_ptr<tcp_proxy::state> owner;
  tcp::socket client;
  tcp::socket upstream;
  pipe_state up;    // client -> server
  pipe_state down;  // server -> client

  session(std::shared_ptr<tcp_proxy::state> o, tcp::socket c)
      : owner(std::move(o)),
        client(std::move(c)),
        upstream(owner->io),
        up(owner->io),
        down(owner->io) {}

  void close_all() {
    hard_reset(client);
    hard_reset(upstream);
    for (pipe_state* p : {&up, &down}) {
      p->closed = true;
      p->wake.cancel();
    }
  }

  asio::awaitable<void> pump(tcp::socket& from, pipe_state& p, bool to_server) {
    auto self = shared_from_this();
    std::array<char, 16384> buf{};
    for (;;) {
      auto [ec, n] = co_await from.async_read_some(asio::buffer(buf), use_tuple);
      if (ec)
        break;
      if (owner->blackhole.load() || (!to_server && owner->drop_replies.load()))
        continue;
      const auto delay = std::chrono::milliseconds(to_server ? owner->delay_to_server_ms.load()
                                                             : owner->delay_to_client_ms.load());
      p.queue.push_back(
          chunk{clock_type::now() + delay, std::vector<char>(buf.data(), buf.data() + n)});
      p.wake.cancel();
    }
    // The peer closed or failed: tear the whole connection down, as a real hop would.
    close_all();
  }

  asio::awaitable<void> deliver(tcp::socket& to, pipe_state& p, bool to_server) {
    auto self = shared_from_this();
    while (!p.closed) {
      if (p.queue.empty()) {
        p.wake.expires_at(clock_type::time_point::max());
        co_await p.wake.async_wait(use_tuple);
        continue;
      }
      if (p.queue.front().due > clock_type::now()) {
        p.wake.expires_at(p.queue.front().due);
        co_await p.wake.async_wait(use_tuple);
        continue;
      }
      chunk c = std::move(p.queue.front());
      p.queue.pop_front();
      auto [ec, n] = co_await asio::async_write(to, asio::buffer(c.bytes), use_tuple);
      if (ec)
        break;
      (to_server ? owner->to_server : owner->to_client) += n;
    }
    close_all();
  }

  asio::awaitable<void> run() {
    auto self = shared_from_this();
    auto [ec] = co_await upstream.async_connect(
        tcp::endpoint(asio::ip::address_v4::loopback(), owner->upstream_port), use_tuple);
    if (ec) {
      close_all();
      co_return;
    }
    asio::error_code ignored;
    upstream.set_option(tcp::no_delay(true), ignored);
    client.set_option(tcp::no_delay(true), ignored);
    asio::co_spawn(owner->io, pump(client, up, true), asio::detached);
    asio::co_spawn(owner->io, pump(upstream, down, false), asio::detached);
    asio::co_spawn(owner->io, deliver(upstream, up, true), asio::detached);
    asio::co_spawn(owner->io, deliver(client, down, false), asio::detached);
  }
};

namespace {

asio::awaitable<void> accept_loop(std::shared_ptr<tcp_proxy::state> st) {
  for (;;) {
    auto [ec, sock] = co_await st->acceptor.async_accept(use_tuple);
    if (ec) {
      if (ec == asio::error::operation_aborted || !st->acceptor.is_open())
        co_return;
      continue;
    }
    ++st->accepted;
    if (st->refuse.load()) {
      hard_reset(sock);
      continue;
    }
    auto s = std::make_shared<session>(st, std::move(sock));
    st->sessions.remove_if([](const std::weak_ptr<session>& w) { return w.expired(); });
    st->sessions.push_back(s);
    asio::co_spawn(st->io, s->run(), asio::detached);
  }
}

// Runs f on the io thread and waits for it.
template <class F>
void run_on_io(tcp_proxy::state& st, F f) {
  std::promise<void> done;
  auto fut = done.get_future();
  asio::post(st.io, [&] {
    f();
    done.set_value();
  });
  fut.wait();
}

void reset_sessions(tcp_proxy::state& st) {
  for (auto& w : st.sessions)
    if (auto s = w.lock())
      s->close_all();
  st.sessions.clear();
}

}  // namespace

tcp_proxy::tcp_proxy(std::uint16_t upstream_port, proxy_options opts)
    : state_(std::make_shared<state>()) {
  state_->upstream_port = upstream_port;
  state_->delay_to_server_ms = opts.delay.count();
  state_->delay_to_client_ms = opts.reply_delay.count();
  tcp::endpoint ep(asio::ip::address_v4::loopback(), 0);
  state_->acceptor.open(ep.protocol());
  state_->acceptor.set_option(tcp::acceptor::reuse_address(true));
  state_->acceptor.bind(ep);
  state_->acceptor.listen();
  asio::co_spawn(state_->io, accept_loop(state_), asio::detached);
  state_->thread = std::thread([st = state_.get()] { st->io.run(); });
}

tcp_proxy::~tcp_proxy() {
  // Closing the acceptor and every socket, and waking every timer, lets each coroutine run to
  // its end; io.run() then returns by itself, so no frame (holding the state) is left behind.
  run_on_io(*state_, [st = state_.get()] {
    asio::error_code ignored;
    st->acceptor.close(ignored);
    reset_sessions(*st);
  });
  state_->thread.join();
}

std::uint16_t tcp_proxy::port() const noexcept {
  asio::error_code ec;
  return state_->acceptor.local_endpoint(ec).port();
}

void tcp_proxy::set_delay(std::chrono::milliseconds to_server,
                          std::chrono::milliseconds to_client) {
  state_->delay_to_server_ms = to_server.count();
  state_->delay_to_client_ms = to_client.count();
}

void tcp_proxy::set_blackhole(bool on) {
  state_->blackhole = on;
}
void tcp_proxy::set_drop_replies(bool on) {
  state_->drop_replies = on;
}
void tcp_proxy::set_refuse(bool on) {
  state_->refuse = on;
}

void tcp_proxy::reset_all() {
  run_on_io(*state_, [st = state_.get()] { reset_sessions(*st); });
}

std::size_t tcp_proxy::accepted() const noexcept {
  return state_->accepted.load();
}
std::size_t tcp_proxy::bytes_to_server() const noexcept {
  return state_->to_server.load();
}
std::size_t tcp_proxy::bytes_to_client() const noexcept {
  return state_->to_client.load();
}

}  // namespace redlock::test
