// A move-only type-erased callable. Asio completion handlers (use_awaitable,
// use_future) are move-only, so std::function cannot hold them; C++20 has no
// std::move_only_function yet.
#pragma once

#include <cstddef>
#include <functional>
#include <new>
#include <type_traits>
#include <utility>

namespace redlock::detail {

template <class Signature>
class unique_function;

/// Holds any move-only callable invocable as R(Args...). Callables of at most
/// `inline_size` bytes, alignment at most alignof(std::max_align_t) and a noexcept move
/// constructor live inside the object; others are allocated on the heap. Every request and
/// completion handler goes through one of these, so the common ones must not allocate.
/// A moved-from unique_function is empty. Calling an empty one is undefined.
/// Thread safety: distinct objects: safe. Shared objects: unsafe.
template <class R, class... Args>
class unique_function<R(Args...)> {
 public:
  /// Room for the per-node reply handler (a shared_ptr and four words) and for bind_handler's
  /// wrapper of a plain callback or use_future handler (24-48 bytes with GCC 12 and Asio
  /// 1.22). A wrapper holding an any_io_executor work guard (use_awaitable: ~128 bytes, the
  /// guard alone 120) still goes to the heap.
  static constexpr std::size_t inline_size = 64;

  /// True if a callable of type F is stored without allocating.
  template <class F>
  static constexpr bool stored_inline =
      sizeof(F) <= inline_size &&
      alignof(F) <= alignof(std::max_align_t) && std::is_nothrow_move_constructible_v<F>;

  unique_function() = default;
  unique_function(std::nullptr_t) noexcept {}  // NOLINT: mirrors std::function

  template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, unique_function> &&
                                              std::is_invocable_r_v<R, std::decay_t<F>&, Args...>>>
  unique_function(F&& f) {  // NOLINT: implicit like std::function
    using D = std::decay_t<F>;
    if constexpr (stored_inline<D>) {
      ::new (static_cast<void*>(storage_)) D(std::forward<F>(f));
      ops_ = &inline_ops<D>::table;
    } else {
      ::new (static_cast<void*>(storage_)) D*(new D(std::forward<F>(f)));
      ops_ = &heap_ops<D>::table;
    }
  }

  unique_function(unique_function&& other) noexcept { take(other); }

  unique_function& operator=(unique_function&& other) noexcept {
    if (this != &other) {
      // Moved out first: destroying our callable may destroy whatever owns `other`.
      unique_function incoming(std::move(other));
      reset();
      take(incoming);
    }
    return *this;
  }

  unique_function(const unique_function&) = delete;
  unique_function& operator=(const unique_function&) = delete;

  ~unique_function() { reset(); }

  explicit operator bool() const noexcept { return ops_ != nullptr; }

  R operator()(Args... args) { return ops_->call(storage_, std::forward<Args>(args)...); }

 private:
  struct ops_t {
    R (*call)(void* storage, Args&&... args);
    // Move-constructs the callable held in `from` into `to` and ends the one in `from`.
    void (*relocate)(void* from, void* to) noexcept;
    void (*destroy)(void* storage) noexcept;
  };

  template <class D>
  static R call_held(D& fn, Args&&... args) {
    if constexpr (std::is_void_v<R>) {
      std::invoke(fn, std::forward<Args>(args)...);
    } else {
      return std::invoke(fn, std::forward<Args>(args)...);
    }
  }

  template <class D>
  struct inline_ops {
    static D& held(void* s) noexcept { return *std::launder(static_cast<D*>(s)); }
    static R call(void* s, Args&&... args) {
      return call_held(held(s), std::forward<Args>(args)...);
    }
    static void relocate(void* from, void* to) noexcept {
      ::new (to) D(std::move(held(from)));
      held(from).~D();
    }
    static void destroy(void* s) noexcept { held(s).~D(); }
    static constexpr ops_t table{&call, &relocate, &destroy};
  };

  // The storage holds a D* to the heap copy.
  template <class D>
  struct heap_ops {
    static D*& held(void* s) noexcept { return *std::launder(static_cast<D**>(s)); }
    static R call(void* s, Args&&... args) {
      return call_held(*held(s), std::forward<Args>(args)...);
    }
    static void relocate(void* from, void* to) noexcept { ::new (to) D*(held(from)); }
    static void destroy(void* s) noexcept { delete held(s); }
    static constexpr ops_t table{&call, &relocate, &destroy};
  };

  void reset() noexcept {
    // Emptied before the callable's destructor runs, in case that destructor looks at us.
    if (const ops_t* ops = std::exchange(ops_, nullptr))
      ops->destroy(storage_);
  }

  // Precondition: *this is empty.
  void take(unique_function& other) noexcept {
    if (other.ops_ != nullptr) {
      other.ops_->relocate(other.storage_, storage_);
      ops_ = std::exchange(other.ops_, nullptr);
    }
  }

  alignas(std::max_align_t) unsigned char storage_[inline_size];
  const ops_t* ops_ = nullptr;
};

}  // namespace redlock::detail
