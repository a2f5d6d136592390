// A loopback TCP proxy that delays every client-to-server byte by a fixed time (case d of the
// benchmark: one slow node among five). Server-to-client bytes pass at once, so each request
// sees its round trip grow by exactly the delay, and the order of bytes is kept.
//
// Usage: redlock_bench_proxy --target-port P --delay-ms D --port-file F [--max-seconds S]
// Listens on 127.0.0.1 (a free port, written to F once listening) and exits on SIGTERM or
// SIGINT, or after S seconds (default 3600) so that a forgotten proxy cannot run forever.
#include <asio.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <utility>

namespace {

using asio::ip::tcp;
using clock_type = std::chrono::steady_clock;

// One direction of one connection: reads from `from`, writes to `to` after `delay`.
class direction : public std::enable_shared_from_this<direction> {
 public:
  direction(std::shared_ptr<tcp::socket> from, std::shared_ptr<tcp::socket> to,
            clock_type::duration delay)
      : from_(std::move(from)), to_(std::move(to)), delay_(delay), timer_(from_->get_executor()) {}

  void start() { read(); }

 private:
  struct chunk {
    clock_type::time_point due;
    std::string bytes;
  };

  void read() {
    from_->async_read_some(
        asio::buffer(buf_), [self = shared_from_this()](std::error_code ec, std::size_t n) {
          if (ec)
            return self->shut();
          self->queue_.push_back({clock_type::now() + self->delay_, std::string(self->buf_, n)});
          self->schedule();
          self->read();
        });
  }

  // Arms the timer for the oldest chunk unless a timer or a write is already pending; both
  // call schedule() again when they finish, so the queue always drains in order.
  void schedule() {
    if (waiting_ || writing_ || queue_.empty())
      return;
    waiting_ = true;
    timer_.expires_at(queue_.front().due);
    timer_.async_wait([self = shared_from_this()](std::error_code) {
      self->waiting_ = false;
      self->flush();
    });
  }

  void flush() {
    // Everything already due goes out in one write.
    auto now = clock_type::now();
    out_.clear();
    while (!queue_.empty() && queue_.front().due <= now) {
      out_ += queue_.front().bytes;
      queue_.pop_front();
    }
    if (out_.empty())
      return schedule();
    writing_ = true;
    asio::async_write(*to_, asio::buffer(out_),
                      [self = shared_from_this()](std::error_code ec, std::size_t) {
                        self->writing_ = false;
                        if (ec)
                          return self->shut();
                        self->schedule();
                      });
  }

  void shut() {
    std::error_code ignored;
    from_->close(ignored);
    to_->close(ignored);
    timer_.cancel();
  }

  std::shared_ptr<tcp::socket> from_, to_;
  clock_type::duration delay_;
  asio::steady_timer timer_;
  std::deque<chunk> queue_;
  std::string out_;
  bool waiting_ = false;
  bool writing_ = false;
  char buf_[16384];
};

void accept_loop(tcp::acceptor& acc, tcp::endpoint target, clock_type::duration delay) {
  acc.async_accept([&acc, target, delay](std::error_code ec, tcp::socket s) {
    if (ec)
      return;
    auto client = std::make_shared<tcp::socket>(std::move(s));
    auto server = std::make_shared<tcp::socket>(acc.get_executor());
    server->async_connect(target, [client, server, delay](std::error_code cec) {
      if (cec) {
        std::error_code ignored;
        client->close(ignored);
        return;
      }
      client->set_option(tcp::no_delay(true));
      server->set_option(tcp::no_delay(true));
      std::make_shared<direction>(client, server, delay)->start();
      std::make_shared<direction>(server, client, clock_type::duration::zero())->start();
    });
    accept_loop(acc, target, delay);
  });
}

}  // namespace

int main(int argc, char** argv) {
  int target_port = 0;
  long delay_ms = 0;
  long max_seconds = 3600;
  std::string port_file;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--target-port") {
      target_port = std::atoi(argv[i + 1]);
    } else if (k == "--delay-ms") {
      delay_ms = std::atol(argv[i + 1]);
    } else if (k == "--port-file") {
      port_file = argv[i + 1];
    } else if (k == "--max-seconds") {
      max_seconds = std::atol(argv[i + 1]);
    } else {
      std::cerr << "unknown option " << k << "\n";
      return 2;
    }
  }
  if (target_port <= 0 || target_port > 65535 || delay_ms < 0 || port_file.empty()) {
    std::cerr << "usage: redlock_bench_proxy --target-port P --delay-ms D --port-file F "
                 "[--max-seconds S]\n";
    return 2;
  }
  asio::io_context ioc;
  auto loopback = asio::ip::make_address_v4("127.0.0.1");
  tcp::acceptor acc(ioc, tcp::endpoint(loopback, 0));
  tcp::endpoint target(loopback, static_cast<std::uint16_t>(target_port));
  accept_loop(acc, target, std::chrono::milliseconds(delay_ms));

  asio::signal_set signals(ioc, SIGTERM, SIGINT);
  signals.async_wait([&ioc](std::error_code, int) { ioc.stop(); });
  asio::steady_timer lifetime(ioc, std::chrono::seconds(max_seconds));
  lifetime.async_wait([&ioc](std::error_code ec) {
    if (!ec)
      ioc.stop();
  });

  {
    // Written to a temporary name and renamed, so a reader never sees a partial port.
    std::string tmp = port_file + ".tmp";
    std::ofstream(tmp) << acc.local_endpoint().port() << "\n";
    std::rename(tmp.c_str(), port_file.c_str());
  }
  ioc.run();
  return 0;
}
