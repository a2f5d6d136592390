// RESP2 encoding, and decoding through hiredis's redisReader.
//
// hiredis 0.14 parses framing and nesting (and refuses nesting deeper than 7), but it trusts
// every length it reads: a bulk header is buffered until the whole payload has arrived, a
// negative length other than -1 becomes nil (or an array of negative size), an integer line
// is not checked for digits or overflow, and a bulk payload is not checked for its trailing
// CRLF. So a small framing scanner (`guard`) runs over every fed byte first. It is flat: RESP2
// framing needs no nesting to find where each header line and each bulk payload starts and
// ends, so it keeps a few integers of state and allocates nothing. It enforces the limits as
// soon as a header line is complete, long before hiredis would buffer the payload, and stops
// forwarding bytes to hiredis at the first bad byte, so replies that were complete before it
// are still delivered and the error is reported after them.
//
// hiredis then builds redlock::reply values directly through custom object functions: the top
// level reply lives in the reader (no allocation per reply), and array elements are written in
// place into the parent's `elements`, sized once from the array header.
#include "internal/resp.hpp"

#include <hiredis/read.h>

#include <algorithm>
#include <charconv>
#include <climits>
#include <cstdint>
#include <cstring>
#include <limits>
#include <new>
#include <utility>

#include "redlock/error.hpp"

namespace redlock::detail {

namespace {

// Decimal digits of v. Argument counts and lengths are mostly below 100: test those first.
constexpr std::size_t digits10(std::size_t v) noexcept {
  if (v < 10)
    return 1;
  if (v < 100)
    return 2;
  std::size_t n = 3;
  for (v /= 1000; v != 0; v /= 10)
    ++n;
  return n;
}

// Writes `<prefix><v>\r\n` at p; returns the end. Small values skip std::to_chars's setup.
inline char* put_header(char* p, char prefix, std::size_t v) noexcept {
  *p++ = prefix;
  if (v < 10) {
    *p++ = static_cast<char>('0' + v);
  } else if (v < 100) {
    *p++ = static_cast<char>('0' + v / 10);
    *p++ = static_cast<char>('0' + v % 10);
  } else {
    p = std::to_chars(p, p + 20, v).ptr;
  }
  *p++ = '\r';
  *p++ = '\n';
  return p;
}

}  // namespace

void append_command(std::string& out, std::span<const std::string_view> argv) {
  std::size_t total = 1 + digits10(argv.size()) + 2;
  for (std::string_view a : argv)
    total += 1 + digits10(a.size()) + 2 + a.size() + 2;
  const std::size_t old = out.size();
  // libstdc++ grows geometrically on resize, so repeated appends stay amortised O(1).
  out.resize(old + total);
  char* p = out.data() + old;
  p = put_header(p, '*', argv.size());
  for (std::string_view a : argv) {
    p = put_header(p, '$', a.size());
    if (!a.empty())
      std::memcpy(p, a.data(), a.size());
    p += a.size();
    *p++ = '\r';
    *p++ = '\n';
  }
}

std::string_view info_field(std::string_view info, std::string_view field) noexcept {
  std::size_t pos = 0;
  while (pos < info.size()) {
    std::size_t end = info.find('\n', pos);
    if (end == std::string_view::npos)
      end = info.size();
    std::string_view line = info.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r')
      line.remove_suffix(1);
    if (line.size() > field.size() && line.substr(0, field.size()) == field &&
        line[field.size()] == ':')
      return line.substr(field.size() + 1);
    pos = end + 1;
  }
  return {};
}

std::string encode_command(std::span<const std::string_view> argv) {
  std::string out;
  append_command(out, argv);
  return out;
}

namespace {

// Validates RESP2 framing incrementally; see the file comment.
class guard {
 public:
  explicit guard(const reader_limits& limits) : limits_(limits) {}

  // Scans [data, data + size). Returns how many bytes are good; when that is less than
  // size, error() says what is wrong.
  std::size_t scan(const char* data, std::size_t size) noexcept {
    const char* p = data;
    const char* const end = data + size;
    while (p < end) {
      switch (state_) {
        case state::type:
          switch (*p) {
            case '+':
            case '-':
              state_ = state::line;
              line_len_ = 0;
              saw_cr_ = false;
              break;
            case ':':
            case '$':
            case '*':
              state_ = state::number;
              number_kind_ = *p;
              number_len_ = 0;
              break;
            default:
              return fail(p, data, "unknown RESP2 type byte (RESP3 is not supported)");
          }
          ++p;
          break;

        case state::line: {
          // Status and error lines end at the first CRLF; a lone CR is content.
          if (saw_cr_) {
            if (*p == '\n') {
              ++p;
              state_ = state::type;
              break;
            }
            saw_cr_ = false;
            ++line_len_;  // the CR was content
            continue;
          }
          const auto* cr = static_cast<const char*>(std::memchr(p, '\r', end - p));
          const std::size_t n = (cr ? cr : end) - p;
          line_len_ += n;
          if (line_len_ > limits_.max_bulk_bytes) {
            return fail(p + n, data, "status or error line longer than the bulk limit");
          }
          p += n;
          if (cr) {
            saw_cr_ = true;
            ++p;
          }
          break;
        }

        case state::number:
          // Digits in a tight loop; the line usually arrives whole.
          for (; p < end && *p != '\r'; ++p) {
            if (!((*p >= '0' && *p <= '9') || (*p == '-' && number_len_ == 0)) ||
                number_len_ == sizeof number_) {
              return fail(p, data, "malformed number in a RESP2 header");
            }
            number_[number_len_++] = *p;
          }
          if (p < end) {
            ++p;
            state_ = state::number_lf;
          }
          break;

        case state::number_lf: {
          if (*p != '\n')
            return fail(p, data, "header line not terminated by CRLF");
          // A bad header is failed before its LF, so hiredis never acts on it (it would
          // allocate for an oversized array).
          if (const char* why = finish_number())
            return fail(p, data, why);
          ++p;
          break;
        }

        case state::payload: {
          const std::size_t avail = static_cast<std::size_t>(end - p);
          const std::size_t n = payload_left_ < avail ? payload_left_ : avail;
          payload_left_ -= n;
          p += n;
          if (payload_left_ == 0)
            state_ = state::payload_cr;
          break;
        }

        case state::payload_cr:
          if (*p != '\r')
            return fail(p, data, "bulk string not terminated by CRLF");
          ++p;
          state_ = state::payload_lf;
          break;

        case state::payload_lf:
          if (*p != '\n')
            return fail(p, data, "bulk string not terminated by CRLF");
          ++p;
          state_ = state::type;
          break;

        case state::failed:
          return 0;
      }
    }
    return size;
  }

  bool failed() const noexcept { return state_ == state::failed; }
  const char* error() const noexcept { return error_; }

 private:
  enum class state { type, line, number, number_lf, payload, payload_cr, payload_lf, failed };

  std::size_t fail(const char* p, const char* data, const char* why) noexcept {
    state_ = state::failed;
    error_ = why;
    return static_cast<std::size_t>(p - data);
  }

  // Checks a complete number line; returns an error message or nullptr.
  const char* finish_number() noexcept {
    std::int64_t v = 0;
    const auto [ptr, ec] = std::from_chars(number_, number_ + number_len_, v);
    if (ec != std::errc{} || ptr != number_ + number_len_ || number_len_ == 0) {
      return "malformed number in a RESP2 header";
    }
    state_ = state::type;
    switch (number_kind_) {
      case ':':
        return nullptr;
      case '$':
        if (v == -1)
          return nullptr;
        if (v < 0)
          return "negative bulk string length other than -1";
        if (static_cast<std::uint64_t>(v) > limits_.max_bulk_bytes) {
          return "bulk string longer than the reader limit";
        }
        payload_left_ = static_cast<std::size_t>(v);
        state_ = payload_left_ ? state::payload : state::payload_cr;
        return nullptr;
      default:  // '*'
        if (v == -1)
          return nullptr;
        if (v < 0)
          return "negative array length other than -1";
        // hiredis counts elements in an int.
        if (static_cast<std::uint64_t>(v) > limits_.max_array_elements || v > INT_MAX) {
          return "array with more elements than the reader limit";
        }
        return nullptr;
    }
  }

  reader_limits limits_;
  state state_ = state::type;
  const char* error_ = nullptr;
  // state::line
  std::size_t line_len_ = 0;
  bool saw_cr_ = false;
  // state::number: at most "-9223372036854775808"
  char number_kind_ = 0;
  char number_[20] = {};
  std::size_t number_len_ = 0;
  // state::payload
  std::size_t payload_left_ = 0;
};

}  // namespace

struct reply_reader::impl {
  explicit impl(const reader_limits& l) : limits(l), scanner(l) { create(); }
  ~impl() { destroy(); }
  impl(const impl&) = delete;
  impl& operator=(const impl&) = delete;

  void create() {
    r = redisReaderCreateWithFunctions(&functions);
    if (r == nullptr)
      throw std::bad_alloc();
    r->privdata = this;
    // Keep up to 64 KiB of buffer between replies rather than hiredis's 16 KiB, so a busy
    // pipelined connection does not free and reallocate it on every read.
    r->maxbuf = 64 * 1024;
  }
  void destroy() noexcept {
    if (r != nullptr)
      redisReaderFree(r);
    r = nullptr;
  }

  // The slot an object for `task` is written into: the top-level reply, or a new last element
  // of the parent array. hiredis delivers elements in order and only moves on to a sibling
  // once the previous one is complete, so appending never moves an object still being built.
  static reply* slot(const redisReadTask* task) {
    if (task->parent == nullptr) {
      // Reset in place rather than assigning a fresh reply{}: after next() moved it out there
      // is nothing to free, and this runs once per reply.
      reply& root = static_cast<impl*>(task->privdata)->root;
      root.integer = 0;
      root.str.clear();
      root.elements.clear();
      return &root;
    }
    auto* parent = static_cast<reply*>(task->parent->obj);
    return &parent->elements.emplace_back();
  }

  static void* create_string(const redisReadTask* task, char* str, size_t len) {
    reply* out = slot(task);
    switch (task->type) {
      case REDIS_REPLY_STATUS:
        out->kind = reply::type::status;
        break;
      case REDIS_REPLY_ERROR:
        out->kind = reply::type::error;
        break;
      default:
        out->kind = reply::type::string;
        break;
    }
    out->str.assign(str, len);
    return out;
  }
  static void* create_array(const redisReadTask* task, int elements) {
    reply* out = slot(task);
    out->kind = reply::type::array;
    // The guard has rejected negative counts (hiredis would pass them through). Reserve no
    // more than a few pages up front: a header alone must not cost memory for a million
    // elements that may never arrive.
    constexpr int max_reserve = 1024;
    if (elements > 0) {
      out->elements.reserve(static_cast<std::size_t>(std::min(elements, max_reserve)));
    }
    return out;
  }
  static void* create_integer(const redisReadTask* task, long long value) {
    reply* out = slot(task);
    out->kind = reply::type::integer;
    out->integer = value;
    return out;
  }
  static void* create_nil(const redisReadTask* task) {
    reply* out = slot(task);
    out->kind = reply::type::nil;
    return out;
  }
  // Every object is owned by `root` (or by an array inside it): nothing to free.
  static void free_object(void*) {}

  static inline redisReplyObjectFunctions functions = {create_string, create_array, create_integer,
                                                       create_nil, free_object};

  // Hands hiredis the next slice of staged input; false when nothing is staged.
  bool refill() {
    const std::size_t left = staged.size() - staged_pos;
    if (left == 0)
      return false;
    const std::size_t n = std::min(left, drip);
    // Cannot fail: hiredis refuses input only in its error state, and next() stops there.
    redisReaderFeed(r, staged.data() + staged_pos, n);
    staged_pos += n;
    if (staged_pos == staged.size()) {
      staged.clear();
      staged_pos = 0;
    }
    return true;
  }

  // hiredis compacts its buffer (memmove of everything unparsed) each time it has consumed
  // 1 KiB, so one large read handed over at once costs quadratic copying: a 64 KiB read of
  // small replies moved ~2 MB. Input is therefore given to hiredis in slices of `drip`
  // bytes, the rest waiting in `staged`. The slice doubles while hiredis needs more bytes
  // to finish a reply (one large bulk string costs a logarithmic number of refills).
  static constexpr std::size_t min_drip = 4 * 1024;

  reader_limits limits;
  guard scanner;
  redisReader* r = nullptr;
  reply root;
  std::string staged;  // checked input not yet given to hiredis, from staged_pos
  std::size_t staged_pos = 0;
  std::size_t drip = min_drip;
  bool failed = false;  // an error was reported by next() or feed()
};

reply_reader::reply_reader(reader_limits limits) : impl_(std::make_unique<impl>(limits)) {}

reply_reader::~reply_reader() = default;

std::error_code reply_reader::feed(const char* data, std::size_t size) {
  impl& s = *impl_;
  if (s.failed)
    return errc::protocol_error;
  if (size == 0)
    return {};
  // Check before copying anything, so memory stays bounded whatever the peer sends.
  const std::size_t buffered = (s.r->len - s.r->pos) + (s.staged.size() - s.staged_pos);
  if (size > s.limits.max_buffered_bytes || buffered > s.limits.max_buffered_bytes - size) {
    s.failed = true;
    return errc::protocol_error;
  }
  // After a framing error the bytes are dropped; next() reports it once the replies before
  // it have been pulled.
  const std::size_t good = s.scanner.scan(data, size);
  // The common case (a small read, nothing staged) goes to hiredis without a copy of ours.
  std::size_t direct = 0;
  if (s.staged.size() == s.staged_pos) {
    direct = std::min(good, impl::min_drip);
    if (direct > 0 && redisReaderFeed(s.r, data, direct) != REDIS_OK) {
      s.failed = true;
      return errc::protocol_error;
    }
  }
  if (good > direct) {
    if (s.staged_pos > 0) {
      s.staged.erase(0, s.staged_pos);
      s.staged_pos = 0;
    }
    s.staged.append(data + direct, good - direct);
  }
  return {};
}

std::optional<reply> reply_reader::next(std::error_code& ec) {
  impl& s = *impl_;
  ec.clear();
  if (s.failed) {
    ec = errc::protocol_error;
    return std::nullopt;
  }
  for (;;) {
    void* out = nullptr;
    if (redisReaderGetReply(s.r, &out) != REDIS_OK) {
      s.failed = true;
      ec = errc::protocol_error;
      return std::nullopt;
    }
    if (out != nullptr) {
      s.drip = impl::min_drip;
      return std::optional<reply>(std::move(s.root));
    }
    if (!s.refill())
      break;
    s.drip *= 2;
  }
  if (s.scanner.failed()) {
    s.failed = true;
    ec = errc::protocol_error;
  }
  return std::nullopt;
}

void reply_reader::reset() {
  impl& s = *impl_;
  s.destroy();
  s.create();
  s.scanner = guard(s.limits);
  s.root = reply{};
  s.staged.clear();
  s.staged_pos = 0;
  s.drip = impl::min_drip;
  s.failed = false;
}

reply error_reply(std::string msg) {
  reply r;
  r.kind = reply::type::error;
  r.str = std::move(msg);
  return r;
}

}  // namespace redlock::detail
