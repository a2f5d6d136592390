// The I/O side of holding: a thin loop over detail::extension_machine on a strand, plus the
// acquire → run → release sequence of async_hold.
#include <cstdint>
#include <mutex>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/bind_executor.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/system_executor.hpp>

#include "internal/extension_machine.hpp"
#include "redlock/hold.hpp"

namespace redlock {
namespace detail {

class hold_state : public std::enable_shared_from_this<hold_state> {
 public:
  hold_state(lock l, extension_machine::timing t, lock_keeper::loss_handler on_loss)
      : manager_(lock_access::manager(l)),
        strand_(asio::make_strand(executor_of(*manager_))),
        timer_(strand_),
        machine_(t, steady_clock::now(), l.validity_deadline()),
        on_loss_(std::move(on_loss)),
        current_(std::move(l)) {
    last_report_ = current_.report();
  }

  void start() {
    asio::post(strand_, [self = shared_from_this()] { self->step(); });
  }

  // --- strand only ---

  void step() {
    if (stopped_)
      return;
    auto a = machine_.resume(steady_clock::now());
    switch (a.kind) {
      case extension_machine::action::type::wait:
        arm(a.until);
        return;
      case extension_machine::action::type::extend:
        extend();
        step();  // arm the deadline (or cap) timer while the round is in flight
        return;
      case extension_machine::action::type::signal:
        signal(a.reason);
        return;
      case extension_machine::action::type::idle:
        disarm();
        return;
    }
  }

  void arm(steady_clock::time_point until) {
    auto gen = ++timer_gen_;
    timer_.expires_at(until);
    timer_.async_wait([self = shared_from_this(), gen](std::error_code) {
      // A stale wait (re-armed or disarmed since) must not drive the machine.
      if (gen == self->timer_gen_)
        self->step();
    });
  }

  void disarm() {
    ++timer_gen_;
    timer_.cancel();
  }

  void extend() {
    lock cur = snapshot_lock();
    call_options once;
    // One round per extension: extension_machine owns the retry schedule.
    once.retry_count = 0;
    auto ttl = std::chrono::duration_cast<std::chrono::milliseconds>(machine_.get_timing().ttl);
    start_extend(manager_, cur, ttl, once,
                 [self = shared_from_this()](std::error_code ec, lock nl) {
                   asio::post(self->strand_, [self, ec, nl = std::move(nl)]() mutable {
                     self->extend_done(ec, std::move(nl));
                   });
                 });
  }

  void extend_done(std::error_code ec, lock nl) {
    auto before = machine_.extensions();
    if (!ec) {
      machine_.on_extended(nl.validity_deadline());
    } else {
      machine_.on_extend_failed(ec, steady_clock::now());
    }
    {
      std::lock_guard g(mu_);
      last_report_ = nl.report();
      extensions_ = machine_.extensions();
      if (machine_.extensions() != before)
        current_ = std::move(nl);
    }
    if (release_after_extend_) {
      release_after_extend_ = false;
      do_release();
      return;
    }
    step();
  }

  void signal(loss_reason r) {
    disarm();
    bool tell = false;
    {
      std::lock_guard g(mu_);
      // A release or detach requested before the deadline ends a hold that was valid
      // throughout: the deadline passing while its strand hop is queued changes nothing.
      const bool expired_after_stop =
          r == loss_reason::expired && stop_requested_ && stop_requested_at_ < machine_.deadline();
      if (!expired_after_stop) {
        reason_ = r;
        error_ = machine_.error();
      }
      // Decided under mu_, where request_stop() sets the flag: once release or detach was
      // requested, no loss handler call starts (the caller is done with the lock, and
      // `redlock run` would otherwise report a loss for a command that finished in time).
      tell = !stop_requested_;
    }
    if (!tell)
      return;
    stop_.request_stop();
    if (on_loss_)
      on_loss_(r, machine_.error());
  }

  void release(hold_completion done) {
    if (stopped_) {
      done(make_error_code(errc::invalid_argument), outcome());
      return;
    }
    stopped_ = true;
    release_done_ = std::move(done);
    // A routine that returns after the deadline (before the timer fired) did not hold the
    // lock throughout, even though nobody was signalled. The release counts from when it
    // was requested, not from this strand hop.
    {
      std::lock_guard g(mu_);
      const auto asked = stop_requested_ ? stop_requested_at_ : steady_clock::now();
      if (reason_ == loss_reason::none && asked >= machine_.deadline())
        reason_ = loss_reason::expired;
    }
    machine_.stop();
    disarm();
    // Release after any extension in flight: its re-sync could otherwise recreate a key on
    // a node the release has already passed.
    if (machine_.extending()) {
      release_after_extend_ = true;
      return;
    }
    do_release();
  }

  void do_release() {
    lock cur = snapshot_lock();
    start_unlock(manager_, cur, call_options{},
                 [self = shared_from_this()](std::error_code ec, unlock_result r) {
                   asio::post(self->strand_, [self, ec, r = std::move(r)]() mutable {
                     self->release_done(ec, std::move(r));
                   });
                 });
  }

  void release_done(std::error_code ec, unlock_result r) {
    {
      std::lock_guard g(mu_);
      last_report_ = std::move(r.report);
    }
    auto out = outcome();
    out.unlock_error = ec;
    auto done = std::move(release_done_);
    if (done)
      done(ec, std::move(out));
  }

  lock detach() {
    request_stop();
    auto l = snapshot_lock();
    asio::post(strand_, [self = shared_from_this()] {
      self->stopped_ = true;
      self->machine_.stop();
      self->disarm();
    });
    return l;
  }

  // --- any thread ---

  /// Called by release and detach before their strand hop: from here on no loss handler
  /// call starts (see signal()).
  void request_stop() {
    std::lock_guard g(mu_);
    if (!stop_requested_) {
      stop_requested_ = true;
      stop_requested_at_ = steady_clock::now();
    }
  }

  lock snapshot_lock() const {
    std::lock_guard g(mu_);
    return current_;
  }

  hold_outcome outcome() const {
    std::lock_guard g(mu_);
    hold_outcome o;
    o.reason = reason_;
    o.held_throughout = reason_ == loss_reason::none;
    o.error = error_;
    o.extensions = extensions_;
    o.last_lock = current_;
    o.last_report = last_report_;
    return o;
  }

  std::shared_ptr<manager_impl> manager_;
  asio::strand<asio::any_io_executor> strand_;

  // Observable state, read by hold_context from any thread.
  mutable std::mutex mu_;
  loss_reason reason_ = loss_reason::none;
  std::error_code error_;
  int extensions_ = 0;
  std::stop_source stop_;
  bool stop_requested_ = false;                 // guarded by mu_
  steady_clock::time_point stop_requested_at_;  // guarded by mu_

 private:
  asio::steady_timer timer_;
  extension_machine machine_;
  lock_keeper::loss_handler on_loss_;
  std::uint64_t timer_gen_ = 0;
  bool stopped_ = false;
  bool release_after_extend_ = false;
  hold_completion release_done_;
  lock current_;                 // guarded by mu_
  redlock::report last_report_;  // guarded by mu_
};

const std::shared_ptr<manager_impl>& manager_of(const hold_state& s) noexcept {
  return s.manager_;
}

std::shared_ptr<hold_state> make_hold_state(lock l, const hold_options& o,
                                            lock_keeper::loss_handler on_loss) {
  if (!l.acquired() || !lock_access::manager(l)) {
    throw lock_error(make_error_code(errc::invalid_argument), "lock_keeper needs an acquired lock");
  }
  auto t = extension_machine::make_timing(l.ttl(), o);
  auto s = std::make_shared<hold_state>(std::move(l), t, std::move(on_loss));
  s->start();
  return s;
}

void start_keeper_unlock(const std::shared_ptr<hold_state>& s, hold_completion done) {
  if (!s) {
    asio::post(asio::system_executor(), [d = std::move(done)]() mutable {
      d(make_error_code(errc::invalid_argument), hold_outcome{});
    });
    return;
  }
  s->request_stop();
  asio::post(s->strand_, [s, d = std::move(done)]() mutable { s->release(std::move(d)); });
}

namespace {

std::string describe_failure(const std::vector<std::string>& resources, std::error_code ec,
                             const redlock::report& r) {
  std::string msg = "hold: acquiring";
  for (const auto& res : resources) {
    msg += " '";
    msg += res;
    msg += "'";
  }
  msg += " failed: ";
  msg += ec.message();
  auto detail = r.to_string();
  if (!detail.empty()) {
    msg += "\n";
    msg += detail;
  }
  return msg;
}

}  // namespace

void start_hold(const std::shared_ptr<manager_impl>& m, std::vector<std::string> resources,
                std::chrono::milliseconds ttl, hold_options opts, routine_runner run,
                asio::cancellation_slot outer, hold_run_completion done) {
  // Reject bad options before touching the servers.
  try {
    (void)extension_machine::make_timing(ttl, opts);
  } catch (...) {
    asio::post(executor_of(*m), [d = std::move(done), e = std::current_exception()]() mutable {
      d(e, hold_outcome{});
    });
    return;
  }
  auto acquire = opts.locking;
  auto res_copy = resources;
  // The caller's slot first cancels the acquire (which stops retrying, releases what it took
  // and completes with errc::cancelled); async_lock clears it before completing, and it is
  // then handed to the routine below.
  auto acquired = [res = std::move(res_copy), opts = std::move(opts), run = std::move(run), outer,
                   done = std::move(done)](std::error_code ec, lock l) mutable {
    if (ec) {
      hold_outcome out;
      out.last_report = l.report();
      auto e = std::make_exception_ptr(lock_error(ec, describe_failure(res, ec, l.report())));
      done(e, std::move(out));
      return;
    }
    // The routine's signal lives on the hold's strand, like every emission into it.
    auto sig = std::make_shared<asio::cancellation_signal>();
    std::shared_ptr<hold_state> state;
    try {
      state = make_hold_state(std::move(l), opts, [sig](loss_reason, std::error_code) {
        sig->emit(asio::cancellation_type::terminal);
      });
    } catch (...) {
      done(std::current_exception(), hold_outcome{});
      return;
    }
    if (outer.is_connected()) {
      outer.assign([state, sig](asio::cancellation_type t) {
        asio::post(state->strand_, [sig, t] { sig->emit(t); });
      });
    }
    auto strand = state->strand_;
    run(hold_context(state), strand, sig->slot(),
        [state, sig, outer, done = std::move(done)](std::exception_ptr e) mutable {
          if (outer.is_connected())
            outer.clear();
          start_keeper_unlock(
              state, [e, done = std::move(done)](std::error_code, hold_outcome out) mutable {
                done(e, std::move(out));
              });
        });
  };
  start_lock(m, std::move(resources), ttl, acquire, outer,
             bind_cancellable_handler<decltype(acquired), std::error_code, lock>(
                 std::move(acquired), outer, fallback_executor(m.get())));
}

}  // namespace detail

// --- hold_context ---

bool hold_context::lost() const noexcept {
  return reason() != loss_reason::none;
}

loss_reason hold_context::reason() const noexcept {
  if (!state_)
    return loss_reason::none;
  std::lock_guard g(state_->mu_);
  return state_->reason_;
}

std::error_code hold_context::error() const {
  if (!state_)
    return {};
  std::lock_guard g(state_->mu_);
  return state_->error_;
}

lock hold_context::current_lock() const {
  if (!state_)
    return {};
  return state_->snapshot_lock();
}

steady_clock::duration hold_context::remaining(steady_clock::time_point now) const {
  return current_lock().remaining(now);
}

int hold_context::extensions() const noexcept {
  if (!state_)
    return 0;
  std::lock_guard g(state_->mu_);
  return state_->extensions_;
}

std::stop_token hold_context::stop_token() const noexcept {
  if (!state_)
    return {};
  return state_->stop_.get_token();
}

// --- lock_keeper ---

lock_keeper::lock_keeper(lock l, hold_options opts, loss_handler on_loss)
    : state_(detail::make_hold_state(std::move(l), opts, std::move(on_loss))) {}

lock_keeper::~lock_keeper() {
  // Fire and forget: a second release (after async_unlock) completes with
  // invalid_argument into this no-op.
  if (state_)
    detail::start_keeper_unlock(state_, [](std::error_code, hold_outcome) {});
}

lock_keeper::lock_keeper(lock_keeper&&) noexcept = default;

lock_keeper& lock_keeper::operator=(lock_keeper&& other) noexcept {
  if (this != &other) {
    if (state_)
      detail::start_keeper_unlock(state_, [](std::error_code, hold_outcome) {});
    state_ = std::move(other.state_);
  }
  return *this;
}

hold_context lock_keeper::context() const {
  return hold_context(state_);
}

hold_outcome lock_keeper::unlock() {
  std::promise<hold_outcome> p;
  auto f = p.get_future();
  detail::start_keeper_unlock(state_, [&p](std::error_code ec, hold_outcome out) {
    out.unlock_error = ec;
    p.set_value(std::move(out));
  });
  return f.get();
}

lock lock_keeper::detach() {
  if (!state_)
    return {};
  auto l = state_->detach();
  state_.reset();
  return l;
}

}  // namespace redlock
