// Everything a user needs: #include <redlock.hpp>
#pragma once

#include "redlock/asio_compat.hpp"
#include "redlock/blocking.hpp"
#include "redlock/cluster_node.hpp"
#include "redlock/endpoint.hpp"
#include "redlock/error.hpp"
#include "redlock/hold.hpp"
#include "redlock/inspect.hpp"
#include "redlock/lock_manager.hpp"
#include "redlock/make_node.hpp"
#include "redlock/mutex.hpp"
#include "redlock/node.hpp"
#include "redlock/options.hpp"
#include "redlock/redis_node.hpp"
#include "redlock/report.hpp"
#include "redlock/sentinel_node.hpp"
