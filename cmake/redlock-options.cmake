# Warnings and sanitizer flags, applied to our own targets through redlock_warnings.
add_library(redlock_warnings INTERFACE)
target_compile_options(redlock_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wno-sign-conversion -Wnon-virtual-dtor
  $<$<CXX_COMPILER_ID:GNU>:-Wno-maybe-uninitialized>)

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
  add_link_options(-fsanitize=thread)
elseif(NOT REDLOCK_SANITIZE STREQUAL "")
  message(FATAL_ERROR "REDLOCK_SANITIZE must be '', 'address' or 'thread'")
endif()
