#include "redlock/blocking.hpp"

#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <tuple>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

namespace redlock {

namespace {
// A callback that fulfils a promise with both the error and the result. (asio::use_future
// would throw the error code alone and lose the result's report; Asio 1.22's as_tuple does
// not compose with use_future.)
template <class T>
struct fulfil {
  std::shared_ptr<std::promise<std::pair<std::error_code, T>>> p;
  void operator()(std::error_code ec, T v) const { p->set_value({ec, std::move(v)}); }
};

template <class T, class Start>
std::pair<std::error_code, T> wait_for_result(Start start) {
  auto p = std::make_shared<std::promise<std::pair<std::error_code, T>>>();
  auto f = p->get_future();
  start(fulfil<T>{std::move(p)});
  return f.get();
}
}  // namespace

struct blocking_lock_manager::impl {
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  std::optional<lock_manager> manager;
  std::thread thread;
  std::once_flag quit_once;

  impl() = default;

  void run() {
    thread = std::thread([this] { io.run(); });
  }

  void shutdown() noexcept {
    try {
      std::call_once(quit_once, [this] {
        if (manager && thread.joinable()) {
          // Waits for operations in flight (their releases included), then closes nodes.
          auto p = std::make_shared<std::promise<void>>();
          auto f = p->get_future();
          manager->async_quit([p](std::error_code) { p->set_value(); });
          f.wait();
        }
      });
    } catch (...) {
    }
  }

  ~impl() {
    shutdown();
    work.reset();
    if (thread.joinable())
      thread.join();
    manager.reset();  // after the thread: nothing runs on the manager any more
  }
};

namespace {
// Throwing overloads: the report says which node did what, so it goes into what().
[[noreturn]] void throw_with_report(std::error_code ec, const report& r) {
  std::string what = "redlock";
  if (!r.nodes.empty()) {
    what += " (attempts: " + std::to_string(r.attempts) + ")\n" + r.to_string();
  }
  throw lock_error(ec, what);
}
}  // namespace

blocking_lock_manager::blocking_lock_manager(const std::vector<std::string>& urls,
                                             manager_options s)
    : impl_(std::make_unique<impl>()) {
  impl_->manager.emplace(impl_->io.get_executor(), urls, s);
  impl_->run();
}

blocking_lock_manager::blocking_lock_manager(std::vector<std::shared_ptr<node>> nodes,
                                             manager_options s)
    : impl_(std::make_unique<impl>()) {
  impl_->manager.emplace(impl_->io.get_executor(), std::move(nodes), s);
  impl_->run();
}

blocking_lock_manager::~blocking_lock_manager() = default;

lock blocking_lock_manager::lock(const std::vector<std::string>& resources,
                                 std::chrono::milliseconds ttl, call_options opts,
                                 std::error_code& ec) {
  auto [e, l] = wait_for_result<redlock::lock>(
      [&](auto cb) { impl_->manager->async_lock(resources, ttl, opts, std::move(cb)); });
  ec = e;
  return std::move(l);
}

lock blocking_lock_manager::lock(const std::vector<std::string>& resources,
                                 std::chrono::milliseconds ttl, call_options opts) {
  std::error_code ec;
  auto l = lock(resources, ttl, opts, ec);
  if (ec)
    throw_with_report(ec, l.report());
  return l;
}

lock blocking_lock_manager::try_lock(const std::vector<std::string>& resources,
                                     std::chrono::milliseconds ttl, std::error_code& ec) {
  auto [e, l] = wait_for_result<redlock::lock>(
      [&](auto cb) { impl_->manager->async_try_lock(resources, ttl, std::move(cb)); });
  ec = e;
  return std::move(l);
}

lock blocking_lock_manager::try_lock(const std::vector<std::string>& resources,
                                     std::chrono::milliseconds ttl) {
  std::error_code ec;
  auto l = try_lock(resources, ttl, ec);
  if (ec)
    throw_with_report(ec, l.report());
  return l;
}

lock blocking_lock_manager::extend(const redlock::lock& l, std::chrono::milliseconds ttl,
                                   call_options opts, std::error_code& ec) {
  auto [e, r] = wait_for_result<redlock::lock>(
      [&](auto cb) { impl_->manager->async_extend(l, ttl, opts, std::move(cb)); });
  ec = e;
  return std::move(r);
}

lock blocking_lock_manager::extend(const redlock::lock& l, std::chrono::milliseconds ttl,
                                   call_options opts) {
  std::error_code ec;
  auto r = extend(l, ttl, opts, ec);
  if (ec)
    throw_with_report(ec, r.report());
  return r;
}

unlock_result blocking_lock_manager::unlock(const redlock::lock& l, call_options opts,
                                            std::error_code& ec) {
  auto [e, r] = wait_for_result<unlock_result>(
      [&](auto cb) { impl_->manager->async_unlock(l, opts, std::move(cb)); });
  ec = e;
  return std::move(r);
}

unlock_result blocking_lock_manager::unlock(const redlock::lock& l, call_options opts) {
  std::error_code ec;
  auto r = unlock(l, opts, ec);
  if (ec)
    throw_with_report(ec, r.report);
  return r;
}

void blocking_lock_manager::quit() {
  impl_->shutdown();
}

lock_manager& blocking_lock_manager::async() noexcept {
  return *impl_->manager;
}

}  // namespace redlock
