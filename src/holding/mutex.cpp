// distributed_mutex.
#include <algorithm>
#include <condition_variable>
#include <future>
#include <mutex>
#include <utility>

#include "redlock/mutex.hpp"

namespace redlock {

// Shared with release completions, which may run after the mutex object is gone.
struct distributed_mutex::state : std::enable_shared_from_this<state> {
  state(blocking_lock_manager& m, std::vector<std::string> r, mutex_options o)
      : manager(&m), resources(std::move(r)), opts(std::move(o)) {}

  blocking_lock_manager* manager;
  const std::vector<std::string> resources;
  const mutex_options opts;

  std::mutex mu;
  std::condition_variable cv;
  // Claimed by one local user from lock()/try_lock() until its release has finished, so
  // that local users queue here instead of contending with each other on the servers.
  bool busy = false;
  lock_keeper keeper;  // valid while held

  void unclaim() noexcept {
    {
      std::lock_guard g(mu);
      busy = false;
    }
    cv.notify_one();
  }

  void keep(redlock::lock l) {
    lock_keeper k(std::move(l), opts.hold, opts.on_loss);
    std::lock_guard g(mu);
    keeper = std::move(k);
  }
};

distributed_mutex::distributed_mutex(blocking_lock_manager& m, std::string resource,
                                     mutex_options opts)
    : distributed_mutex(m, std::vector<std::string>{std::move(resource)}, std::move(opts)) {}

distributed_mutex::distributed_mutex(blocking_lock_manager& m, std::vector<std::string> resources,
                                     mutex_options opts) {
  // Bad extension options would only show after acquiring; refuse them now.
  detail::check_hold_options(opts.ttl, opts.hold);
  if (resources.empty()) {
    throw lock_error(make_error_code(errc::invalid_argument),
                     "distributed_mutex needs at least one resource");
  }
  state_ = std::make_shared<state>(m, std::move(resources), std::move(opts));
}

distributed_mutex::~distributed_mutex() {
  lock_keeper k;
  {
    std::lock_guard g(state_->mu);
    k = std::move(state_->keeper);
  }
  // k's destructor stops extending and releases in the background.
}

void distributed_mutex::lock() {
  auto& s = *state_;
  {
    std::unique_lock g(s.mu);
    s.cv.wait(g, [&] { return !s.busy; });
    s.busy = true;
  }
  try {
    call_options o;
    o.retry_count = s.opts.lock_retry_count;
    s.keep(s.manager->lock(s.resources, s.opts.ttl, o));
  } catch (...) {
    s.unclaim();
    throw;
  }
}

bool distributed_mutex::try_lock() {
  auto& s = *state_;
  {
    std::lock_guard g(s.mu);
    if (s.busy)
      return false;
    s.busy = true;
  }
  try {
    auto l = s.manager->try_lock(s.resources, s.opts.ttl);
    if (!l.acquired()) {
      s.unclaim();
      return false;
    }
    s.keep(std::move(l));
    return true;
  } catch (...) {
    s.unclaim();
    throw;
  }
}

bool distributed_mutex::try_lock_within(std::chrono::steady_clock::duration budget) {
  auto& s = *state_;
  const auto deadline = std::chrono::steady_clock::now() + budget;
  {
    std::unique_lock g(s.mu);
    if (!s.cv.wait_until(g, deadline, [&] { return !s.busy; }))
      return false;
    s.busy = true;
  }
  try {
    // One lock call with the rest of the budget (not a loop of single tries): its waits
    // are cut short by announced releases and by the holder's expiry. 0 = one attempt.
    const auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    call_options o;
    o.max_wait = std::max(left, std::chrono::milliseconds::zero());
    s.keep(s.manager->lock(s.resources, s.opts.ttl, o));
    return true;
  } catch (const lock_error& e) {
    s.unclaim();
    // Held elsewhere until the budget ran out: the timed calls' "false", as try_lock's.
    if (e.code() == errc::resource_locked)
      return false;
    throw;
  } catch (...) {
    s.unclaim();
    throw;
  }
}

void distributed_mutex::unlock() noexcept {
  auto& s = *state_;
  lock_keeper k;
  {
    std::lock_guard g(s.mu);
    if (!s.keeper.valid())
      return;
    k = std::move(s.keeper);
  }
  try {
    k.async_unlock([self = state_->shared_from_this()](std::error_code ec, hold_outcome out) {
      if (ec) {
        if (auto m = detail::lock_access::manager(out.last_lock)) {
          std::string msg = "distributed_mutex: releasing";
          for (const auto& r : self->resources)
            msg += " '" + r + "'";
          msg += " failed: " + ec.message();
          detail::report_node_error(*m, node_error{std::string(), ec, std::move(msg)});
        }
      }
      self->unclaim();
    });
  } catch (...) {
    // Out of memory while starting the release: the lock expires by itself; the next local
    // user must not wait forever.
    s.unclaim();
  }
}

bool distributed_mutex::lost() const noexcept {
  std::lock_guard g(state_->mu);
  return state_->keeper.valid() && state_->keeper.lost();
}

std::stop_token distributed_mutex::loss_token() const noexcept {
  std::lock_guard g(state_->mu);
  if (!state_->keeper.valid())
    return {};
  return state_->keeper.context().stop_token();
}

redlock::lock distributed_mutex::current_lock() const {
  std::lock_guard g(state_->mu);
  if (!state_->keeper.valid())
    return {};
  return state_->keeper.current_lock();
}

const std::vector<std::string>& distributed_mutex::resources() const noexcept {
  return state_->resources;
}

}  // namespace redlock
