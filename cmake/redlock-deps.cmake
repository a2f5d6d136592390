# Dependency targets shared by the build tree and the installed package config.
# libasio-dev ships no CMake or pkg-config file and Debian's hiredis config sets
# variables only, so both are wrapped here in targets of our own.
include(CMakeFindDependencyMacro)
find_dependency(Threads)
find_dependency(OpenSSL 3)

if(NOT TARGET redlock::asio)
  find_path(REDLOCK_ASIO_INCLUDE_DIR asio.hpp PATHS /usr/include REQUIRED)
  add_library(redlock::asio INTERFACE IMPORTED)
  set_target_properties(redlock::asio PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${REDLOCK_ASIO_INCLUDE_DIR}"
    # clang 14 with libstdc++ needs the last two to see asio::awaitable. ASIO_NO_DEPRECATED is
    # not here: it would reach users' code and break their io_service; our own targets get it
    # through redlock_warnings (cmake/redlock-options.cmake).
    INTERFACE_COMPILE_DEFINITIONS "ASIO_STANDALONE;ASIO_HAS_CO_AWAIT=1;ASIO_HAS_STD_COROUTINE=1"
    INTERFACE_LINK_LIBRARIES "Threads::Threads;OpenSSL::SSL;OpenSSL::Crypto")
endif()

if(NOT TARGET redlock::hiredis)
  find_path(REDLOCK_HIREDIS_INCLUDE_DIR hiredis/read.h REQUIRED)
  find_library(REDLOCK_HIREDIS_LIBRARY NAMES hiredis REQUIRED)
  add_library(redlock::hiredis UNKNOWN IMPORTED)
  set_target_properties(redlock::hiredis PROPERTIES
    IMPORTED_LOCATION "${REDLOCK_HIREDIS_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${REDLOCK_HIREDIS_INCLUDE_DIR}")
endif()
