// Inspection: one read-only script to every node at once, then a sans-I/O verdict.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <future>
#include <limits>
#include <map>
#include <mutex>

#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>

#include "internal/admission.hpp"
#include "internal/core.hpp"
#include "internal/scripts.hpp"
#include "redlock/cluster_node.hpp"
#include "redlock/inspect.hpp"

namespace redlock {

bool node_state::free() const noexcept {
  if (!answered())
    return false;
  return std::none_of(keys.begin(), keys.end(), [](const key_state& k) { return k.present; });
}

std::optional<std::string> node_state::holder() const {
  if (!answered() || keys.empty())
    return std::nullopt;
  const auto& first = keys.front().value;
  if (!first)
    return std::nullopt;
  for (const auto& k : keys) {
    if (!k.value || *k.value != *first)
      return std::nullopt;
  }
  return first;
}

bool forced_node::removed_any() const noexcept {
  return answered() &&
         std::any_of(values.begin(), values.end(),
                     [](const std::optional<std::string>& v) { return v.has_value(); });
}

std::size_t force_release_result::answered_nodes() const noexcept {
  return static_cast<std::size_t>(
      std::count_if(nodes.begin(), nodes.end(), [](const forced_node& n) { return n.answered(); }));
}

std::size_t force_release_result::removed_nodes() const noexcept {
  return static_cast<std::size_t>(std::count_if(
      nodes.begin(), nodes.end(), [](const forced_node& n) { return n.removed_any(); }));
}

const char* to_string(lock_status s) noexcept {
  switch (s) {
    case lock_status::held:
      return "held";
    case lock_status::free:
      return "free";
    case lock_status::indeterminate:
      return "indeterminate";
  }
  return "unknown";
}

steady_clock::duration inspection::remaining(steady_clock::time_point now) const noexcept {
  if (!held())
    return steady_clock::duration::zero();
  if (validity_deadline == steady_clock::time_point::max())
    return steady_clock::duration::max();
  return validity_deadline - now;
}

std::string inspection::to_string() const {
  std::string out = redlock::to_string(status);
  char buf[96];
  if (held()) {
    out += " by " + holder;
    std::snprintf(buf, sizeof buf, " on %zu/%zu nodes (quorum %zu)", holding_nodes, nodes.size(),
                  quorum);
    out += buf;
    if (validity_deadline == steady_clock::time_point::max()) {
      out += ", no expiry";
    } else {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(remaining()).count();
      std::snprintf(buf, sizeof buf, ", %lld ms left", static_cast<long long>(left));
      out += buf;
    }
  } else {
    std::snprintf(buf, sizeof buf, " (free on %zu/%zu nodes, quorum %zu)", free_nodes, nodes.size(),
                  quorum);
    out += buf;
  }
  for (const auto& n : nodes) {
    out += "\n";
    out += n.node;
    out += ": ";
    if (!n.answered()) {
      out += n.ec.message();
      if (!n.message.empty())
        out += " (" + n.message + ")";
      continue;
    }
    bool first = true;
    for (const auto& k : n.keys) {
      if (!first)
        out += ", ";
      first = false;
      if (!k.present) {
        out += "none";
      } else {
        out += k.value ? *k.value : std::string("<not a string>");
        if (k.ttl.count() >= 0) {
          std::snprintf(buf, sizeof buf, " %lld ms", static_cast<long long>(k.ttl.count()));
          out += buf;
        } else {
          out += " no expiry";
        }
        if (k.owner)
          out += " (" + redlock::to_string(*k.owner) + ")";
      }
    }
    if (n.fencing_counter)
      out += ", fencing counter " + std::to_string(*n.fencing_counter);
  }
  return out;
}

namespace detail {

const script& inspect_script() {
  // GET through pcall: a key of another type (not a lock) reads as nil with its PTTL, so
  // "present but not a string" stays distinguishable from "absent" (PTTL -2). The fencing
  // counters are read by the same loop (their PTTL, -1 or -2, is not used).
  static const script s(
      "local out = {}\n"
      "for _, key in ipairs(KEYS) do\n"
      "  local v = redis.pcall('GET', key)\n"
      "  if type(v) == 'table' then v = false end\n"
      "  out[#out + 1] = v\n"
      "  out[#out + 1] = redis.call('PTTL', key)\n"
      "end\n"
      "return out\n");
  return s;
}

void decide(inspection& in, double drift_factor, steady_clock::time_point started) {
  // The verdict is the core's (one quorum and one drift formula for every operation); this
  // only translates the nodes' answers in and the verdict out.
  std::vector<core::inspected_node> views(in.nodes.size());
  std::vector<std::optional<std::string>> holders(in.nodes.size());
  for (std::size_t i = 0; i < in.nodes.size(); ++i) {
    const auto& n = in.nodes[i];
    auto& v = views[i];
    v.answered = n.answered();
    v.free = n.free();
    holders[i] = n.holder();
    if (holders[i])
      v.holder = *holders[i];
    for (const auto& k : n.keys) {
      if (k.ttl.count() >= 0)
        v.shortest_ttl = std::min(v.shortest_ttl.value_or(k.ttl), k.ttl);
    }
  }
  auto verdict = core::judge_inspection(views, drift_factor, started);
  switch (verdict.status) {
    case core::inspection_status::held:
      in.status = lock_status::held;
      break;
    case core::inspection_status::free:
      in.status = lock_status::free;
      break;
    case core::inspection_status::indeterminate:
      in.status = lock_status::indeterminate;
      break;
  }
  in.holder = std::move(verdict.holder);
  in.owner.reset();
  if (in.status == lock_status::held) {
    for (std::size_t i = 0; i < in.nodes.size(); ++i) {
      const auto& keys = in.nodes[i].keys;
      if (holders[i] == in.holder && !keys.empty() && keys.front().owner) {
        in.owner = keys.front().owner;
        break;
      }
    }
  }
  in.holding_nodes = verdict.holding_nodes;
  in.free_nodes = verdict.free_nodes;
  in.quorum = verdict.quorum;
  in.validity_deadline = verdict.validity_deadline;
}

namespace {

// One script sent to every node at once under one request_timeout, answered when all replied
// or the timeout passed: the frame inspection and force release share. Every field is touched
// on `strand` only. Derived supplies which_script(), take(i, ec, r) (one node's reply: returns the
// node's error, if any), no_reply(i) (a node silent at the timeout) and verdict() (the result
// before it goes out); and, as static members, Result, Completion and timeout_message.
template <class Derived, class Result, class Completion>
struct every_node_op : std::enable_shared_from_this<Derived> {
  every_node_op(std::shared_ptr<manager_impl> mi, asio::strand<asio::any_io_executor> s)
      : m(std::move(mi)), strand(s), timer(s) {}

  std::shared_ptr<manager_impl> m;
  asio::strand<asio::any_io_executor> strand;
  asio::steady_timer timer;
  Result result;
  std::vector<std::string> keys;  ///< KEYS of the script
  std::vector<std::string> args;  ///< ARGV of the script
  std::vector<bool> answered;
  std::size_t pending = 0;
  bool finished = false;
  steady_clock::time_point started;
  Completion done;

  Derived& self() { return static_cast<Derived&>(*this); }

  // The operation proper, on `strand` once the manager admitted it.
  void begin() {
    auto op = this->shared_from_this();
    started = steady_clock::now();
    timer.expires_after(settings_of(*m).request_timeout);
    timer.async_wait([op](std::error_code ec) {
      if (!ec)
        op->on_timeout();
    });
    const auto& ns = nodes_of(*m);
    for (std::size_t i = 0; i < ns.size(); ++i) {
      ns[i]->async_eval(
          self().which_script(), keys, args, [op, i](std::error_code ec, reply r) mutable {
            // The reference goes with the closure: a node destroys this handler on its own
            // thread, maybe after the manager's io_context is gone, so it must not hold the
            // last reference to the op (and its strand).
            auto& op_strand = op->strand;
            asio::post(op_strand, [op = std::move(op), i, ec, r = std::move(r)]() mutable {
              op->on_reply(i, ec, std::move(r));
            });
          });
    }
  }

  // One deployment listed twice: nothing is sent.
  void refuse(const std::string& why) {
    finished = true;
    end_operation(*m);
    result.detail = why;
    auto d = std::move(done);
    d(make_error_code(errc::duplicate_deployment), std::move(result));
  }

  void on_reply(std::size_t i, std::error_code ec, reply r) {
    if (finished)
      return;  // late reply after the timeout: the verdict is already out
    answered[i] = true;
    --pending;
    auto& n = result.nodes[i];
    ec = self().take(i, ec, r);
    if (ec) {
      n.ec = ec;
      if (r.kind == reply::type::error)
        n.message = r.str;
      report_node_error(*m, node_error{n.node, n.ec, n.message.empty() ? ec.message() : n.message});
    }
    if (pending == 0)
      finish();
  }

  void on_timeout() {
    if (finished)
      return;
    for (std::size_t i = 0; i < answered.size(); ++i) {
      if (answered[i])
        continue;
      auto& n = result.nodes[i];
      n.ec = make_error_code(errc::timeout);
      self().no_reply(i);
      report_node_error(*m, node_error{n.node, n.ec, Derived::timeout_message});
    }
    finish();
  }

  void finish() {
    finished = true;
    timer.cancel();
    self().verdict();
    end_operation(*m);
    auto d = std::move(done);
    d(std::error_code{}, std::move(result));
  }
};

// Starts an every_node_op over `resources` (their keys, with the manager's prefix, are the
// first KEYS); `setup(op)` adds what the operation needs beyond them. A bad resource list or a
// closed manager completes `done` with the error, later, never from within this call.
template <class Op, class Setup>
void start_every_node(const std::shared_ptr<manager_impl>& m, std::vector<std::string> resources,
                      typename Op::completion done, Setup&& setup) {
  auto ex = executor_of(*m);
  const auto fail = [&ex](typename Op::completion d, refusal r) {
    asio::post(ex, [d = std::move(d), r = std::move(r)]() mutable {
      typename Op::result_type res;
      res.detail = std::move(r.detail);
      d(r.ec, std::move(res));
    });
  };
  if (auto r = check_resources(resources)) {
    fail(std::move(done), std::move(r));
    return;
  }
  auto op = register_operation(*m, [&] {
    auto o = std::make_shared<Op>(m, asio::make_strand(ex));
    const auto& nodes = nodes_of(*m);
    const auto& prefix = settings_of(*m).key_prefix;
    for (const auto& r : resources)
      o->keys.push_back(prefix + r);
    o->result.resources = std::move(resources);
    o->result.nodes.resize(nodes.size());
    for (std::size_t i = 0; i < nodes.size(); ++i)
      o->result.nodes[i].node = nodes[i]->id();
    o->answered.assign(nodes.size(), false);
    o->pending = nodes.size();
    setup(*o);
    return o;
  });
  if (!op) {
    fail(std::move(done), refusal{make_error_code(errc::closed), {}});
    return;
  }
  op->done = std::move(done);
  // After the manager's identity check (one deployment listed twice is refused as for every
  // other operation); then on the op's strand, so a reply cannot overtake the setup.
  when_admitted(
      m, [op] { asio::post(op->strand, [op] { op->begin(); }); },
      [op](const std::string& why) { op->refuse(why); });
}

// One inspection in flight: the read-only script, then the sans-I/O verdict (decide()).
struct inspect_op : every_node_op<inspect_op, inspection, inspect_completion> {
  using result_type = inspection;
  using completion = inspect_completion;
  static constexpr const char* timeout_message = "no inspection reply within request_timeout";
  using every_node_op::every_node_op;

  /// What each KEY after the resources' is: a fencing counter or an owner record, of which
  /// resource (same order as those KEYS).
  struct extra {
    std::size_t resource = 0;
    bool owner = false;  ///< an owner record (else a fencing counter)
  };
  std::vector<extra> extras;

  const script& which_script() const { return inspect_script(); }

  std::error_code take(std::size_t i, std::error_code ec, const reply& r) {
    auto& n = result.nodes[i];
    no_reply(i);  // the latency, measured the same way for an answer
    if (!ec)
      ec = parse(r, n);
    if (ec) {
      n.keys.clear();
      n.fencing_counter.reset();
    }
    return ec;
  }

  void no_reply(std::size_t i) {
    result.nodes[i].latency =
        std::chrono::duration_cast<std::chrono::microseconds>(steady_clock::now() - started);
  }

  void verdict() { decide(result, settings_of(*m).drift_factor, started); }

  std::error_code parse(const reply& r, node_state& n) const {
    const auto resources = result.resources.size();
    if (r.kind != reply::type::array || r.elements.size() != 2 * keys.size()) {
      return make_error_code(errc::protocol_error);
    }
    n.keys.clear();
    n.fencing_counter.reset();
    for (std::size_t k = 0; k < keys.size(); ++k) {
      const auto& v = r.elements[2 * k];
      const auto& t = r.elements[2 * k + 1];
      if (t.kind != reply::type::integer)
        return make_error_code(errc::protocol_error);
      if (v.kind != reply::type::string && v.kind != reply::type::nil)
        return make_error_code(errc::protocol_error);
      if (k >= resources && extras[k - resources].owner) {
        // An owner record: shown only beside the value it was written with.
        if (v.kind != reply::type::string)
          continue;
        auto& key = n.keys[extras[k - resources].resource];
        if (auto o = decode_owner(v.str); o && key.value == o->value)
          key.owner = std::move(o);
        continue;
      }
      if (k >= resources) {
        // A counter key. One that does not hold a decimal integer was not written by
        // redlock (INCR would fail on it): not a counter, and no reason to fail the node.
        std::uint64_t c = 0;
        const char* end = v.str.data() + v.str.size();
        if (v.kind == reply::type::string && !v.str.empty()) {
          const auto [ptr, err] = std::from_chars(v.str.data(), end, c);
          if (err == std::errc{} && ptr == end)
            n.fencing_counter = std::max(n.fencing_counter.value_or(0), c);
        }
        continue;
      }
      key_state ks;
      ks.ttl = std::chrono::milliseconds(t.integer);
      ks.present = t.integer != -2;
      if (v.kind == reply::type::string)
        ks.value = v.str;
      n.keys.push_back(std::move(ks));
    }
    return {};
  }
};

}  // namespace

void start_inspect(lock_manager& lm, std::vector<std::string> resources, inspect_completion done) {
  start_inspect(detail::impl_of(lm), std::move(resources), std::move(done));
}

void start_inspect(const std::shared_ptr<manager_impl>& m, std::vector<std::string> resources,
                   inspect_completion done) {
  start_every_node<inspect_op>(m, std::move(resources), std::move(done), [](inspect_op& o) {
    // The fencing counters, then the owner records. A Cluster node runs one script only over
    // keys of one hash slot (and refuses the call otherwise): a counter or record key that
    // cannot share its resource's slot is not read.
    const auto count = o.keys.size();
    for (bool owner : {false, true}) {
      for (std::size_t i = 0; i < count; ++i) {
        const std::string key = o.keys[i];
        auto extra = owner ? owner_key(key) : fencing_counter_key(key);
        if (cluster_key_slot(extra) == cluster_key_slot(key)) {
          o.keys.push_back(std::move(extra));
          o.extras.push_back({i, owner});
        }
      }
    }
    o.result.quorum = core::quorum_of(o.result.nodes.size());
  });
}

namespace {

// One force release in flight: the deleting script; its result is what each node removed.
struct force_op : every_node_op<force_op, force_release_result, force_completion> {
  using result_type = force_release_result;
  using completion = force_completion;
  static constexpr const char* timeout_message = "no force release reply within request_timeout";
  using every_node_op::every_node_op;

  std::vector<std::size_t> owner_of;  ///< per owner record key (after the lock keys): its resource

  const script& which_script() const { return force_release_script(); }

  std::error_code take(std::size_t i, std::error_code ec, const reply& r) {
    auto& n = result.nodes[i];
    const auto count = result.resources.size();
    if (!ec && (r.kind != reply::type::array || r.elements.size() != keys.size()))
      ec = make_error_code(errc::protocol_error);
    if (ec)
      return ec;
    n.values.assign(count, std::nullopt);
    n.owners.assign(count, std::nullopt);
    for (std::size_t k = 0; k < keys.size(); ++k) {
      const auto& e = r.elements[k];
      if (e.kind != reply::type::string)
        continue;
      if (k < count)
        n.values[k] = e.str;
      else
        n.owners[owner_of[k - count]] = decode_owner(e.str);
    }
    return {};
  }

  void no_reply(std::size_t) {}
  void verdict() {}
};

}  // namespace

void start_force_release(const std::shared_ptr<manager_impl>& m, std::vector<std::string> resources,
                         force_completion done) {
  start_every_node<force_op>(m, std::move(resources), std::move(done), [](force_op& o) {
    const auto count = o.keys.size();
    for (std::size_t i = 0; i < count; ++i) {
      // As inspection: a record that cannot share its key's Cluster slot is not touched.
      auto record = owner_key(o.keys[i]);
      if (cluster_key_slot(record) == cluster_key_slot(o.keys[i])) {
        o.keys.push_back(std::move(record));
        o.owner_of.push_back(i);
      }
    }
    o.args.push_back(std::to_string(count));  // ARGV[1]: the number of lock keys
  });
}

}  // namespace detail

force_release_result force_release(blocking_lock_manager& m,
                                   const std::vector<std::string>& resources, std::error_code& ec) {
  std::promise<std::pair<std::error_code, force_release_result>> p;
  auto f = p.get_future();
  detail::start_force_release(detail::impl_of(m.async()), resources,
                              [&p](std::error_code e, force_release_result r) {
                                p.set_value({e, std::move(r)});
                              });
  auto [e, r] = f.get();
  ec = e;
  return std::move(r);
}

force_release_result force_release(blocking_lock_manager& m,
                                   const std::vector<std::string>& resources) {
  std::error_code ec;
  auto r = force_release(m, resources, ec);
  if (ec)
    throw lock_error(ec, "force_release");
  return r;
}

inspection inspect(blocking_lock_manager& m, const std::vector<std::string>& resources,
                   std::error_code& ec) {
  std::promise<std::pair<std::error_code, inspection>> p;
  auto f = p.get_future();
  detail::start_inspect(m.async(), resources, [&p](std::error_code e, inspection in) {
    p.set_value({e, std::move(in)});
  });
  auto [e, in] = f.get();
  ec = e;
  return std::move(in);
}

inspection inspect(blocking_lock_manager& m, const std::vector<std::string>& resources) {
  std::error_code ec;
  auto in = inspect(m, resources, ec);
  if (ec)
    throw lock_error(ec, "inspect");
  return in;
}

}  // namespace redlock
