// A tiny program built against the installed (or embedded) redlock: it includes the
// umbrella header, parses a URL, fills in settings and prints the error category. It needs
// no Redis server. Exit status 0 when everything looked right.
//
// It also runs a handler on an asio::io_service, Asio's deprecated name: redlock builds
// itself with ASIO_NO_DEPRECATED but must not impose it on code that includes its headers.
#include <redlock.hpp>

#include <asio/io_service.hpp>
#include <asio/post.hpp>

#include <iostream>
#include <string>

int main() {
  const redlock::endpoint e = redlock::parse_endpoint("redis://app:secret@[::1]:6380/2");
  redlock::manager_options s;
  s.retry_count = 3;
  s.drift_factor = 0.01;

  std::error_code ec;
  std::string why;
  redlock::parse_endpoint("redis://host:notaport", ec, why);

  asio::io_service io;
  bool posted = false;
  asio::post(io, [&posted] { posted = true; });
  io.run();

  std::cout << "endpoint=" << e.to_string() << '\n'
            << "retry_count=" << s.retry_count << '\n'
            << "category=" << redlock::category().name() << '\n'
            << "bad_url=" << ec.message() << '\n'
            << "io_service=" << (posted ? "ran" : "did not run") << '\n';
  const bool ok = posted && e.to_string() == "redis://app:***@[::1]:6380/2" &&
                  e.password == "secret" && ec == redlock::errc::invalid_url &&
                  std::string(redlock::category().name()) == "redlock";
  return ok ? 0 : 1;
}
