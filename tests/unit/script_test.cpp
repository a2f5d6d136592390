// SHA1 of scripts, computed once for EVALSHA.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "internal/scripts.hpp"
#include "redlock/node.hpp"

namespace {

bool is_lower_hex_sha1(const std::string& s) {
  return s.size() == 40 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// Known values (FIPS 180 test vectors, and Redis's own SCRIPT LOAD "return 1"), so the test
// does not depend on a server or on another SHA1 implementation at run time.
TEST(Script, Sha1OfReturn1MatchesRedis) {
  EXPECT_EQ(redlock::script("return 1").sha1(), "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
}

TEST(Script, Sha1OfEmptyAndAbcMatchKnownVectors) {
  EXPECT_EQ(redlock::script("").sha1(), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  EXPECT_EQ(redlock::script("abc").sha1(), "a9993e364706816aba3e25717850c26c9cd0d89d");
}

TEST(Script, KeepsTheTextUnchanged) {
  const std::string text = "return redis.call('GET', KEYS[1])\n";
  const redlock::script s(text);
  EXPECT_EQ(s.text(), text);
  EXPECT_TRUE(is_lower_hex_sha1(s.sha1()));
}

TEST(Script, BuiltInScriptsHaveDistinctWellFormedDigests) {
  const redlock::script* scripts[] = {&redlock::detail::acquire_script(),
                                      &redlock::detail::extend_script(),
                                      &redlock::detail::release_script()};
  std::set<std::string> digests;
  for (const redlock::script* s : scripts) {
    EXPECT_FALSE(s->text().empty());
    EXPECT_TRUE(is_lower_hex_sha1(s->sha1())) << s->sha1();
    EXPECT_EQ(s->sha1(), redlock::script(s->text()).sha1());
    digests.insert(s->sha1());
  }
  EXPECT_EQ(digests.size(), 3u);
}

}  // namespace
