# The Debian package (`cpack -G DEB`, run by scripts/package): one package `redlock` with the
# library, headers, CMake package, pkg-config file, the CLI and its man page. Configure with
# -DCMAKE_INSTALL_PREFIX=/usr so GNUInstallDirs picks Debian's multiarch libdir.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME redlock)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "redlock maintainers <redlock@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "Redlock distributed locks over independent Redis servers (C++20, Asio)")
set(CPACK_PACKAGE_DESCRIPTION
    "A C++20 Redlock client library (static, with headers, a CMake package and a pkg-config\n\
file) and the redlock command-line tool, which runs a command while holding a lock.")
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION libdevel)
# Run-time libraries come from dpkg-shlibdeps on the CLI (libhiredis0.14, libssl3, libc6,
# libstdc++6, ...). The -dev packages are what the headers, the static library, the CMake
# package and redlock.pc need to build a consumer: nothing links them, so they are listed.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "libasio-dev, libhiredis-dev, libssl-dev")
# redlock::prometheus, when built, needs prometheus-cpp-dev only for consumers that ask for the
# component (find_package(redlock COMPONENTS prometheus)): suggested, not required.
if(REDLOCK_WITH_PROMETHEUS)
  set(CPACK_DEBIAN_PACKAGE_SUGGESTS "prometheus-cpp-dev")
endif()
include(CPack)
