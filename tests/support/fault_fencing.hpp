// The fencing checker shared by the fault tests and the soak (issue 13): critical sections that
// carry the fencing token of their lock and write the protected value through a fenced store
// (include/redlock/fenced_store.hpp). It checks what the fencing property promises and what
// the store must enforce:
//   (a) tokens of successive critical sections (ordered by start) strictly increase;
//   (b) no token is handed out twice;
//   (c) the store never accepted a stale write: an accepted write whose token is lower than a
//       token accepted before it (its write had been answered before this one was sent);
// and that every refusal is explained by a higher token written before it, and that the store
// ends with the highest token accepted. Plus a blocking fenced store for clients that are
// plain threads or processes.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "redlock/fenced_store.hpp"
#include "support/fault_checker.hpp"

namespace redlock::test {

class io_thread;

enum class fenced_write {
  none,      ///< the section wrote nothing (too little validity left, or it gave up)
  accepted,  ///< the store took the write
  refused,   ///< the store refused it: a higher token had been written
};

struct fenced_section {
  /// client, start (the lock acquired), end, read (the value read), wrote (read + 1 when the
  /// write was accepted, -1 otherwise): what check_sections looks at.
  critical_section section;
  std::uint64_t token = 0;  ///< lock::fencing_token() (0: acquired without fencing)
  fenced_write write = fenced_write::none;
  std::int64_t write_begin_ns = 0;  ///< when the write was sent (monotonic)
  std::int64_t write_end_ns = 0;    ///< when its answer came
  std::uint64_t highest = 0;        ///< the store's highest token after the write (its answer)
};

struct fencing_result {
  std::size_t sections = 0;
  std::size_t tokens_checked = 0;  ///< sections with a token (all of them, unless `unfenced`)
  std::uint64_t max_token = 0;
  std::size_t unfenced = 0;        ///< sections with token 0
  std::size_t not_increasing = 0;  ///< (a): a section's token <= the previous section's
  std::size_t repeated = 0;        ///< (b): sections whose token an earlier section had
  std::size_t accepted = 0;
  std::size_t refused = 0;
  std::size_t stale_accepted = 0;        ///< (c)
  std::size_t unexplained_refusals = 0;  ///< refused, but no higher token had been written
  bool store_mismatch = false;           ///< the store's final token is not the highest accepted
  std::string first_problem;
  bool ok() const noexcept {
    return unfenced == 0 && not_increasing == 0 && repeated == 0 && stale_accepted == 0 &&
           unexplained_refusals == 0 && !store_mismatch;
  }
  /// "42 sections, 42 tokens checked (max 57), 40 accepted, 2 refused, ..." for the output.
  std::string summary() const;
};

/// Checks `sections` (in any order). `final_store_token`: the token the store holds at the
/// end (0: never written); it must be the highest accepted token.
fencing_result check_fencing(std::vector<fenced_section> sections,
                             std::optional<std::uint64_t> final_store_token = std::nullopt);

/// The sections for check_sections: those that wrote or tried to (a section that wrote
/// nothing acted on nothing).
std::vector<critical_section> acting_sections(const std::vector<fenced_section>& sections);

/// One line per section, "client start end read wrote token write write_begin write_end
/// highest" (write: n, a or r), and back.
std::string to_line(const fenced_section& s);
std::optional<fenced_section> parse_fenced_line(const std::string& line);

/// A fenced store for one key on one redis-server (127.0.0.1:port), used from a blocking
/// caller: a redis_node on an io thread of its own, every call bounded by `timeout` (an
/// operation that does not complete in time returns errc::timeout).
/// Distinct objects: safe. Shared objects: unsafe.
class blocking_fenced_store {
 public:
  blocking_fenced_store(std::uint16_t port, std::string key,
                        std::chrono::milliseconds timeout = std::chrono::milliseconds(2000));
  ~blocking_fenced_store();
  blocking_fenced_store(const blocking_fenced_store&) = delete;
  blocking_fenced_store& operator=(const blocking_fenced_store&) = delete;

  std::pair<std::error_code, fenced_value> read();
  std::pair<std::error_code, fenced_write_result> write(std::uint64_t token, std::string value);

 private:
  std::chrono::milliseconds timeout_;
  std::unique_ptr<io_thread> io_;
  std::shared_ptr<node> node_;
  std::unique_ptr<fenced_store> store_;
};

}  // namespace redlock::test
