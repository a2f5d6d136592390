#include <openssl/evp.h>

#include "redlock/error.hpp"
#include "redlock/node.hpp"

namespace redlock {

script::script(std::string text) : text_(std::move(text)) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(text_.data(), text_.size(), digest, &len, EVP_sha1(), nullptr) != 1) {
    throw lock_error(make_error_code(errc::invalid_argument), "SHA1 of script failed");
  }
  static constexpr char hex[] = "0123456789abcdef";
  sha1_.reserve(2 * len);
  for (unsigned int i = 0; i < len; ++i) {
    sha1_.push_back(hex[digest[i] >> 4]);
    sha1_.push_back(hex[digest[i] & 0xF]);
  }
}

}  // namespace redlock
