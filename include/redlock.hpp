// Everything a user needs: #include <redlock.hpp>
//
// Besides the library's headers, the Asio pieces that using it takes (an io_context to run
// on, co_spawn and detached to start coroutines, the use_awaitable and use_future tokens), so
// that the README's examples need nothing else.
#pragma once

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>

#include "redlock/asio_compat.hpp"
#include "redlock/blocking.hpp"
#include "redlock/cluster_node.hpp"
#include "redlock/endpoint.hpp"
#include "redlock/error.hpp"
#include "redlock/fenced_store.hpp"
#include "redlock/hold.hpp"
#include "redlock/inspect.hpp"
#include "redlock/lock_manager.hpp"
#include "redlock/make_node.hpp"
#include "redlock/mutex.hpp"
#include "redlock/node.hpp"
#include "redlock/observer.hpp"
#include "redlock/options.hpp"
#include "redlock/owner.hpp"
#include "redlock/redis_node.hpp"
#include "redlock/report.hpp"
#include "redlock/resource_list.hpp"
#include "redlock/sentinel_node.hpp"
