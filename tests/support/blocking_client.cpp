#include "support/blocking_client.hpp"

#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <stdexcept>

namespace redlock::test {
namespace {

reply convert(const redisReply* r) {
  reply out;
  if (!r)
    return out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.kind = reply::type::string;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.kind = reply::type::status;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.kind = reply::type::error;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.kind = reply::type::integer;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.kind = reply::type::array;
      out.elements.reserve(r->elements);
      for (std::size_t i = 0; i < r->elements; ++i)
        out.elements.push_back(convert(r->element[i]));
      break;
    default:
      out.kind = reply::type::nil;
      break;
  }
  return out;
}

timeval to_timeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

}  // namespace

void blocking_client::context_deleter::operator()(redisContext* c) const noexcept {
  redisFree(c);
}

blocking_client::blocking_client(const std::string& host, std::uint16_t port,
                                 std::chrono::milliseconds timeout, const std::string& unix_path) {
  const timeval tv = to_timeval(timeout);
  ctx_.reset(unix_path.empty() ? redisConnectWithTimeout(host.c_str(), port, tv)
                               : redisConnectUnixWithTimeout(unix_path.c_str(), tv));
  if (!ctx_) {
    error_ = "cannot allocate a hiredis context";
    return;
  }
  if (ctx_->err != 0) {
    error_ = ctx_->errstr;
    ctx_.reset();
    return;
  }
  redisSetTimeout(ctx_.get(), tv);
}

blocking_client::~blocking_client() = default;
blocking_client::blocking_client(blocking_client&&) noexcept = default;
blocking_client& blocking_client::operator=(blocking_client&&) noexcept = default;

bool blocking_client::connected() const noexcept {
  return ctx_ && ctx_->err == 0;
}

std::string blocking_client::error() const {
  return ctx_ && ctx_->err != 0 ? std::string(ctx_->errstr) : error_;
}

std::optional<reply> blocking_client::command(const std::vector<std::string>& argv) {
  if (!connected())
    return std::nullopt;
  std::vector<const char*> ptrs;
  std::vector<size_t> lens;
  for (const auto& a : argv) {
    ptrs.push_back(a.data());
    lens.push_back(a.size());
  }
  auto* r = static_cast<redisReply*>(
      redisCommandArgv(ctx_.get(), static_cast<int>(argv.size()), ptrs.data(), lens.data()));
  if (!r)
    return std::nullopt;
  reply out = convert(r);
  freeReplyObject(r);
  return out;
}

reply blocking_client::command_or_throw(const std::vector<std::string>& argv,
                                        const std::string& what) {
  auto r = command(argv);
  if (!r)
    throw std::runtime_error(what + ": " + error());
  return std::move(*r);
}

}  // namespace redlock::test
