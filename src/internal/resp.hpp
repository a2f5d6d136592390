// RESP2 encoding and decoding, with no I/O.
//
// Encoding writes the multi-bulk form, which is binary safe (CR, LF, NUL in
// arguments are fine). Decoding wraps hiredis's pull parser (redisReader) and
// bounds what a hostile or broken server can make us allocate.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

#include "redlock/reply.hpp"

namespace redlock::detail {

/// Appends `*<n>\r\n$<len>\r\n<arg>\r\n...` for argv to `out`.
void append_command(std::string& out, std::span<const std::string_view> argv);
/// Convenience: one encoded command.
std::string encode_command(std::span<const std::string_view> argv);

/// The value of `field` in an INFO reply ("field:value" lines, CRLF or LF separated), or an
/// empty view when absent. E.g. info_field(info, "run_id").
std::string_view info_field(std::string_view info, std::string_view field) noexcept;

/// Limits applied while decoding; a reply beyond them is a protocol error.
struct reader_limits {
  std::size_t max_bulk_bytes = 64 * 1024 * 1024;       ///< one bulk string
  std::size_t max_array_elements = 1024 * 1024;        ///< elements of one array
  std::size_t max_buffered_bytes = 128 * 1024 * 1024;  ///< unparsed input held at once
};

/// Incremental RESP2 parser. Feed bytes as they arrive, then pull complete replies.
/// Distinct objects: safe. Shared objects: unsafe.
class reply_reader {
 public:
  explicit reply_reader(reader_limits limits = {});
  ~reply_reader();
  reply_reader(const reply_reader&) = delete;
  reply_reader& operator=(const reply_reader&) = delete;

  /// Adds bytes. Returns a protocol_error if the buffer limit would be exceeded (counting
  /// unparsed bytes already held) or the reader has failed. Malformed input is not reported
  /// here: next() reports it after the replies that were complete before it.
  std::error_code feed(const char* data, std::size_t size);

  /// Returns the next complete reply, std::nullopt if more bytes are needed, or sets `ec`
  /// (errc::protocol_error) on malformed input; after an error the reader is unusable
  /// until reset().
  std::optional<reply> next(std::error_code& ec);

  /// Drops all buffered input and any error state (used after a reconnect).
  void reset();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// The read loop of a connection: feeds `data` to `r`, then hands each complete reply to
/// `on_reply(reply&&)` while `more()` is true. Returns what made the input unreadable, or
/// nullptr.
template <class More, class OnReply>
const char* read_replies(reply_reader& r, const char* data, std::size_t size, More&& more,
                         OnReply&& on_reply) {
  if (r.feed(data, size))
    return "reply exceeds the size limits";
  while (more()) {
    std::error_code ec;
    std::optional<reply> next = r.next(ec);
    if (ec)
      return "malformed reply";
    if (!next)
      break;
    on_reply(std::move(*next));
  }
  return nullptr;
}

/// An error reply carrying `msg` (for failures a node reports without a server reply).
reply error_reply(std::string msg);

}  // namespace redlock::detail
