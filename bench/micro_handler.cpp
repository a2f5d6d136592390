// Micro-benchmarks: the life of one handler through unique_function (construct, move into a
// queue slot, call, destroy), as every node request and every completion does, against the
// previous design (one heap allocation per handler) compiled in the same run.
#include <benchmark/benchmark.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>

#include "redlock/detail/unique_function.hpp"

namespace {

// unique_function before small-buffer storage: a make_unique per callable.
template <class Signature>
class heap_function;

template <class R, class... Args>
class heap_function<R(Args...)> {
 public:
  heap_function() = default;
  template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, heap_function>>>
  heap_function(F&& f)  // NOLINT: implicit like unique_function
      : impl_(std::make_unique<model<std::decay_t<F>>>(std::forward<F>(f))) {}
  R operator()(Args... args) { return impl_->call(std::forward<Args>(args)...); }

 private:
  struct concept_t {
    virtual ~concept_t() = default;
    virtual R call(Args&&... args) = 0;
  };
  template <class F>
  struct model final : concept_t {
    explicit model(F&& f) : fn(std::move(f)) {}
    R call(Args&&... args) override { return fn(std::forward<Args>(args)...); }
    F fn;
  };
  std::unique_ptr<concept_t> impl_;
};

struct reply {
  std::string value;
};

// The per-node reply handler's captures: a shared_ptr to the operation and four words.
auto handler_sized_lambda(const std::shared_ptr<std::uint64_t>& op, std::size_t i) {
  return [self = op, i, p = 1, attempt = std::uint64_t{7}, ticket = std::uint64_t{9}](
             std::error_code ec, const reply& r) mutable {
    *self += i + static_cast<std::uint64_t>(p) + attempt + ticket +
             static_cast<std::uint64_t>(ec.value()) + r.value.size();
  };
}

// A completion-sized capture that does not fit the inline storage (heap in both designs).
auto oversized_lambda(const std::shared_ptr<std::uint64_t>& op, std::size_t i) {
  std::array<std::uint64_t, 10> words{};
  words[0] = i;
  return [self = op, words](std::error_code ec, const reply& r) mutable {
    *self += words[0] + static_cast<std::uint64_t>(ec.value()) + r.value.size();
  };
}

template <class Function, class Make>
void handler_life(benchmark::State& state, Make make) {
  auto op = std::make_shared<std::uint64_t>(0);
  std::size_t i = 0;
  for (auto _ : state) {
    Function f = make(op, i++ & 7);
    benchmark::DoNotOptimize(f);
    Function queued = std::move(f);  // as into a node's request queue
    benchmark::DoNotOptimize(queued);
    queued(std::error_code{}, reply{});
  }
  benchmark::DoNotOptimize(*op);
}

using signature = void(std::error_code, reply);

void bm_handler_unique_function(benchmark::State& state) {
  handler_life<redlock::detail::unique_function<signature>>(
      state, [](const auto& op, std::size_t i) { return handler_sized_lambda(op, i); });
}
BENCHMARK(bm_handler_unique_function);

void bm_handler_heap_baseline(benchmark::State& state) {
  handler_life<heap_function<signature>>(
      state, [](const auto& op, std::size_t i) { return handler_sized_lambda(op, i); });
}
BENCHMARK(bm_handler_heap_baseline);

void bm_oversized_handler_unique_function(benchmark::State& state) {
  handler_life<redlock::detail::unique_function<signature>>(
      state, [](const auto& op, std::size_t i) { return oversized_lambda(op, i); });
}
BENCHMARK(bm_oversized_handler_unique_function);

void bm_oversized_handler_heap_baseline(benchmark::State& state) {
  handler_life<heap_function<signature>>(
      state, [](const auto& op, std::size_t i) { return oversized_lambda(op, i); });
}
BENCHMARK(bm_oversized_handler_heap_baseline);

static_assert(redlock::detail::unique_function<signature>::stored_inline<
              decltype(handler_sized_lambda(std::shared_ptr<std::uint64_t>{}, 0))>);
static_assert(!redlock::detail::unique_function<signature>::stored_inline<
              decltype(oversized_lambda(std::shared_ptr<std::uint64_t>{}, 0))>);

}  // namespace

BENCHMARK_MAIN();
