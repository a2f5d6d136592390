# Warnings and sanitizer flags, applied to our own targets through redlock_warnings (linked
# PRIVATE or as $<BUILD_INTERFACE:...>, so none of it reaches a user's targets).
add_library(redlock_warnings INTERFACE)
target_compile_options(redlock_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wno-sign-conversion -Wnon-virtual-dtor
  $<$<CXX_COMPILER_ID:GNU>:-Wno-maybe-uninitialized>
  # g++ 12 at -O2/-O3 reports `"literal" + std::string` inside libstdc++ as an overlapping
  # memcpy (GCC bug 105651, fixed in 13): every such concatenation in a Release build.
  $<$<AND:$<CXX_COMPILER_ID:GNU>,$<VERSION_LESS:$<CXX_COMPILER_VERSION>,13>>:-Wno-restrict>
  $<$<BOOL:${REDLOCK_WERROR}>:-Werror>)
# Our code keeps off Asio's deprecated names; users' code may still use them (io_service).
target_compile_definitions(redlock_warnings INTERFACE ASIO_NO_DEPRECATED)

if(REDLOCK_SANITIZE STREQUAL "address")
  set(_san -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    # clang 14 UBSan trips on coroutine frames through -fsanitize=function.
    list(APPEND _san -fno-sanitize=function)
  endif()
  add_compile_options(${_san})
  add_link_options(${_san})
elseif(REDLOCK_SANITIZE STREQUAL "thread")
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  # GCC 12 warns (-Wtsan) on every std::atomic_thread_fence that TSan cannot model; Asio's
  # handler fences (std_fenced_block) trigger it in every file that runs a handler, which
  # would make REDLOCK_WERROR unusable under TSan. It is a notice about TSan, not our code.
  add_compile_options($<$<CXX_COMPILER_ID:GNU>:-Wno-tsan>)
  add_link_options(-fsanitize=thread)
elseif(NOT REDLOCK_SANITIZE STREQUAL "")
  message(FATAL_ERROR "REDLOCK_SANITIZE must be '', 'address' or 'thread'")
endif()
