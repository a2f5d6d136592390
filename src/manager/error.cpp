#include "redlock/error.hpp"

#include <asio/error.hpp>

namespace redlock {
namespace {

class redlock_category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "redlock"; }
  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
      case errc::resource_locked:
        return "resource is locked by another owner";
      case errc::quorum_unreachable:
        return "too many nodes failed to reach a quorum";
      case errc::validity_exhausted:
        return "quorum reached but no validity was left";
      case errc::lock_expired:
        return "the lock's validity has expired";
      case errc::lock_lost:
        return "the lock is no longer held by a quorum";
      case errc::invalid_argument:
        return "invalid argument";
      case errc::closed:
        return "closed";
      case errc::cancelled:
        return "operation cancelled";
      case errc::invalid_url:
        return "invalid URL";
      case errc::connect_failed:
        return "could not connect to the node";
      case errc::timeout:
        return "timed out";
      case errc::connection_lost:
        return "connection lost";
      case errc::tls_failed:
        return "TLS handshake or certificate verification failed";
      case errc::auth_failed:
        return "authentication failed (wrong password, or unknown or disabled user)";
      case errc::auth_required:
        return "the server requires authentication (NOAUTH)";
      case errc::auth_not_configured:
        return "a password was given but the server has none configured";
      case errc::no_permission:
        return "the ACL user lacks permission for the command (NOPERM)";
      case errc::server_error:
        return "the server replied with an error";
      case errc::protocol_error:
        return "malformed or unexpected reply";
      case errc::node_lagging:
        return "not sent: the node is lagging (its oldest request waits beyond the lag limit)";
      case errc::duplicate_deployment:
        return "two nodes reach the same deployment (it would vote twice)";
    }
    return "unknown redlock error";
  }

  // Codes that mean what a standard condition means compare equal to it, so that code written
  // against the standard or Asio vocabulary works unchanged: `ec == std::errc::timed_out`,
  // `ec == std::errc::invalid_argument`, and for errc::cancelled both
  // `ec == std::errc::operation_canceled` and Asio's cancellation condition. Asio 1.22 gives
  // operation_aborted the condition (ECANCELED, asio::system_category()), not the generic one,
  // so cancelled's default condition is Asio's and equivalent() adds the generic one. Every
  // other code is its own condition: "another holder has it" has no standard equivalent.
  std::error_condition default_error_condition(int ev) const noexcept override {
    switch (static_cast<errc>(ev)) {
      case errc::cancelled:
        return asio::error_code(asio::error::operation_aborted).default_error_condition();
      case errc::timeout:
        return std::errc::timed_out;
      case errc::invalid_argument:
        return std::errc::invalid_argument;
      default:
        return std::error_condition(ev, *this);
    }
  }

  bool equivalent(int ev, const std::error_condition& cond) const noexcept override {
    if (static_cast<errc>(ev) == errc::cancelled && cond == std::errc::operation_canceled)
      return true;
    return default_error_condition(ev) == cond;
  }
};

}  // namespace

const std::error_category& category() noexcept {
  static const redlock_category instance;
  return instance;
}

}  // namespace redlock
