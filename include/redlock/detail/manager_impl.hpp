// Private: the type-erased core that the lock_manager templates forward to.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/associated_cancellation_slot.hpp>
#include <asio/associated_executor.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/dispatch.hpp>
#include <asio/executor_work_guard.hpp>

#include "redlock/detail/unique_function.hpp"
#include "redlock/options.hpp"

namespace redlock {
class lock;
class node;
struct unlock_result;
struct node_error;
}  // namespace redlock

namespace redlock::detail {

class manager_impl;

using lock_completion = unique_function<void(std::error_code, lock)>;
using unlock_completion = unique_function<void(std::error_code, unlock_result)>;
using quit_completion = unique_function<void(std::error_code)>;

/// Creates the shared core. Throws lock_error(invalid_argument) for duplicate or no nodes.
std::shared_ptr<manager_impl> make_manager(asio::any_io_executor ex,
                                           std::vector<std::shared_ptr<node>> nodes,
                                           manager_options s);

// `m` may be null in start_extend/start_unlock (an empty handle): they then complete with
// errc::invalid_argument. The start_* functions never call the completion from inside; it runs
// later on the manager's strand. The caller (the templates below) moves it to the handler's
// executor.
void start_lock(const std::shared_ptr<manager_impl>& m, std::vector<std::string> resources,
                std::chrono::milliseconds ttl, call_options opts, lock_completion done);
/// As above, and a connected `slot` (the handler's associated cancellation slot) stops the
/// operation: any cancellation type releases what was taken and completes with
/// errc::cancelled. `done` must clear the slot before invoking the handler (see
/// bind_cancellable_handler).
void start_lock(const std::shared_ptr<manager_impl>& m, std::vector<std::string> resources,
                std::chrono::milliseconds ttl, call_options opts, asio::cancellation_slot slot,
                lock_completion done);
/// One attempt; another owner holding a resource completes with no error and an empty handle.
void start_try_lock(const std::shared_ptr<manager_impl>& m, std::vector<std::string> resources,
                    std::chrono::milliseconds ttl, lock_completion done);
void start_extend(const std::shared_ptr<manager_impl>& m, const lock& l,
                  std::chrono::milliseconds ttl, call_options opts, lock_completion done);
void start_unlock(const std::shared_ptr<manager_impl>& m, const lock& l, call_options opts,
                  unlock_completion done);
void start_quit(const std::shared_ptr<manager_impl>& m, quit_completion done);

const asio::any_io_executor& executor_of(const manager_impl& m) noexcept;

// Accessors for operations built outside the manager core (holding, inspection, try-lock).
const std::vector<std::shared_ptr<node>>& nodes_of(const manager_impl& m) noexcept;
const manager_options& settings_of(const manager_impl& m) noexcept;
/// Runs `start` on the manager's strand once the nodes' identities were checked (at once when
/// they already were), or `refused(detail)` when one deployment is listed twice (see
/// errc::duplicate_deployment). For operations built outside the manager core (inspection), so
/// that every operation passes the same check. Thread safety: any thread.
void when_admitted(const std::shared_ptr<manager_impl>& m, unique_function<void()> start,
                   unique_function<void(const std::string&)> refused);
/// Calls the node-error hook (if set). Thread safety: any thread.
void report_node_error(manager_impl& m, const node_error& e);
/// Registers an operation in flight so that quit waits for it. Returns false (and registers
/// nothing) once the manager is closing; end_operation() must follow every true return.
bool begin_operation(manager_impl& m) noexcept;
void end_operation(manager_impl& m) noexcept;
/// The manager's executor, or asio::system_executor for a null manager (empty lock handles).
asio::any_io_executor fallback_executor(const manager_impl* m) noexcept;

/// Wraps an Asio completion handler so that it runs on its associated executor (falling back
/// to `fallback`), keeping that executor busy until then.
template <class Handler, class... Args>
unique_function<void(Args...)> bind_handler(Handler handler,
                                            const asio::any_io_executor& fallback) {
  auto ex = asio::get_associated_executor(handler, fallback);
  auto work = asio::make_work_guard(ex);
  return [h = std::move(handler), work = std::move(work)](Args... args) mutable {
    auto ex2 = work.get_executor();
    asio::dispatch(ex2, [h = std::move(h), w = std::move(work), ... a = std::move(args)]() mutable {
      std::move(h)(std::move(a)...);
    });
  };
}

/// Like bind_handler, and clears the handler's cancellation slot (on the handler's executor)
/// before invoking it, as Asio requires of operations that installed a cancellation handler.
template <class Handler, class... Args>
unique_function<void(Args...)> bind_cancellable_handler(Handler handler,
                                                        asio::cancellation_slot slot,
                                                        const asio::any_io_executor& fallback) {
  auto ex = asio::get_associated_executor(handler, fallback);
  auto work = asio::make_work_guard(ex);
  return [h = std::move(handler), slot, work = std::move(work)](Args... args) mutable {
    auto ex2 = work.get_executor();
    asio::dispatch(
        ex2, [h = std::move(h), slot, w = std::move(work), ... a = std::move(args)]() mutable {
          auto s = slot;
          if (s.is_connected())
            s.clear();
          std::move(h)(std::move(a)...);
        });
  };
}

}  // namespace redlock::detail
