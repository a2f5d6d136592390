// The resources of one lock, as the initiating functions take them.
#pragma once

#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace redlock {

/// The resource names of one lock (the keys, verbatim). Built implicitly from what a caller
/// naturally writes: one name (`"orders:42"`, a `std::string`), a braced list of names
/// (`{"a", "b"}`) or a `std::vector<std::string>`.
///
/// A braced list is taken by a variadic constructor, not through `std::initializer_list`, so
/// no array is materialised: GCC 12 rejects a braced list that builds an array inside a
/// `co_await` expression ("array used as initializer"), and a braced list is the natural
/// way to write a lock on several resources:
/// `co_await m.async_lock({"a", "b"}, ttl, asio::use_awaitable)`.
///
/// Thread safety: distinct objects safe; shared objects safe for const use.
class resource_list {
 public:
  /// No resources (the operations refuse it with errc::invalid_argument).
  resource_list() = default;
  /// Takes the names as they are.
  resource_list(std::vector<std::string> names) : names_(std::move(names)) {}  // NOLINT
  /// One or more names, each anything convertible to `std::string_view`.
  template <class... Strings>
  requires(sizeof...(Strings) > 0 && (std::is_convertible_v<Strings&&, std::string_view> && ...))
      resource_list(
          Strings&&... names) {  // NOLINT(google-explicit-constructor): implicit on purpose
    names_.reserve(sizeof...(Strings));
    (add(std::forward<Strings>(names)), ...);
  }

  const std::vector<std::string>& names() const& noexcept { return names_; }
  /// Moves the names out.
  std::vector<std::string> names() && noexcept { return std::move(names_); }
  std::size_t size() const noexcept { return names_.size(); }
  bool empty() const noexcept { return names_.empty(); }

 private:
  template <class S>
  void add(S&& s) {
    if constexpr (std::is_same_v<std::remove_cvref_t<S>, std::string>)
      names_.push_back(std::forward<S>(s));
    else
      names_.emplace_back(std::string_view(s));
  }

  std::vector<std::string> names_;
};

}  // namespace redlock
