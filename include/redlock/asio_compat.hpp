// The one place that names Asio's experimental facilities (Asio 1.22), so that an Asio
// upgrade that promotes them touches only this file.
#pragma once

#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/experimental/parallel_group.hpp>

namespace redlock {
/// Completion token adapter: `co_await op(redlock::as_tuple(asio::use_awaitable))` yields
/// (error_code, result) instead of throwing.
using asio::experimental::as_tuple;
namespace awaitable_operators = asio::experimental::awaitable_operators;
}  // namespace redlock
