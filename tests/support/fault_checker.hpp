// The safety checker shared by the fault tests and the soak: given the critical sections that
// clients believed they held (CLOCK_MONOTONIC / steady_clock instants on one machine), it finds
// overlaps between different clients and lost updates on the register they protect.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace redlock::test {

struct critical_section {
  int client = 0;
  std::int64_t start_ns = 0;  ///< when the holder got the lock (or began its work)
  std::int64_t end_ns = 0;    ///< when it finished (or its validity ended)
  std::int64_t read = -1;     ///< register value read inside the section (-1: no register)
  std::int64_t wrote = -1;    ///< value written (read + 1), or -1
};

struct check_result {
  std::size_t sections = 0;
  /// Sections that began before an earlier-starting section of another client had ended.
  std::size_t overlaps = 0;
  /// Sections (in start order) that did not read what the previous one wrote, plus one if
  /// the final register value is not the last write.
  std::size_t lost_updates = 0;
  std::string first_problem;  ///< human-readable description of the first violation
  bool ok() const noexcept { return overlaps == 0 && lost_updates == 0; }
};

/// Checks `sections` (in any order). `final_register`: the register's value at the end.
check_result check_sections(std::vector<critical_section> sections,
                            std::optional<std::int64_t> final_register = std::nullopt);

/// Monotonic nanoseconds (the clock steady_clock uses on Linux), comparable across processes.
std::int64_t monotonic_ns();

/// One line per section, "client start_ns end_ns read wrote", and back.
std::string to_line(const critical_section& s);
std::optional<critical_section> parse_line(const std::string& line);

}  // namespace redlock::test
