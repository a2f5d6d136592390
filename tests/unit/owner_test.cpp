// Owner metadata, the key prefix and force release, against the testing kit's fake servers
// (which mirror the owner scripts and the force release script).
#include <gtest/gtest.h>

#include <asio/io_context.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "internal/scripts.hpp"
#include "redlock/inspect.hpp"
#include "redlock/lock_manager.hpp"
#include "redlock/owner.hpp"
#include "redlock/testing.hpp"
#include "support/io_thread.hpp"
#include "support/options.hpp"

namespace {

using namespace std::chrono_literals;
using redlock::errc;
namespace rt = redlock::testing;

using redlock::test::outcome;

redlock::owner_info someone() {
  redlock::owner_info o;
  o.host = "build-3";
  o.pid = 4242;
  o.program = "backup.sh";
  o.label = "nightly";
  return o;
}

class Owner : public ::testing::Test {
 protected:
  asio::io_context io;
  rt::fake_deployment d{io.get_executor(), 3};

  static redlock::manager_options options() {
    auto o = redlock::test::fast_options();
    o.retry_count = 0;
    o.request_timeout = 100ms;
    return o;
  }

  outcome<redlock::lock> lock(redlock::lock_manager& m, const std::string& resource,
                              redlock::call_options opts = {}) {
    auto out = redlock::test::complete<redlock::lock>(
        io, [&](auto done) { m.async_lock(std::vector<std::string>{resource}, 10s, opts, done); });
    EXPECT_TRUE(out.done) << "lock did not complete";
    return out;
  }

  outcome<redlock::lock> extend(redlock::lock_manager& m, const redlock::lock& l,
                                std::chrono::milliseconds ttl) {
    auto out = redlock::test::complete<redlock::lock>(
        io, [&](auto done) { m.async_extend(l, ttl, done); });
    EXPECT_TRUE(out.done) << "extend did not complete";
    return out;
  }

  outcome<redlock::unlock_result> unlock(redlock::lock_manager& m, const redlock::lock& l) {
    redlock::call_options all;
    all.wait_all_nodes = true;
    auto out = redlock::test::complete<redlock::unlock_result>(
        io, [&](auto done) { m.async_unlock(l, all, done); });
    EXPECT_TRUE(out.done) << "unlock did not complete";
    return out;
  }

  outcome<redlock::force_release_result> force(redlock::lock_manager& m,
                                               std::vector<std::string> resources) {
    auto out = redlock::test::complete<redlock::force_release_result>(
        io, [&](auto done) { redlock::async_force_release(m, std::move(resources), done); });
    EXPECT_TRUE(out.done) << "force release did not complete";
    return out;
  }
};

TEST(OwnerRecord, RoundTripsEveryField) {
  const auto text = redlock::encode_owner("abc", 1700000000123, someone());
  EXPECT_EQ(text,
            "abc\nsince=1700000000123\nhost=build-3\npid=4242\nprogram=backup.sh\n"
            "label=nightly");
  auto o = redlock::decode_owner(text);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->value, "abc");
  EXPECT_EQ(o->since, 1700000000123);
  EXPECT_EQ(o->who.host, "build-3");
  EXPECT_EQ(o->who.pid, 4242);
  EXPECT_EQ(o->who.program, "backup.sh");
  EXPECT_EQ(o->who.label, "nightly");
}

TEST(OwnerRecord, ControlCharactersCannotForgeALine) {
  auto who = someone();
  who.label = "x\nhost=forged\r";
  auto o = redlock::decode_owner(redlock::encode_owner("v", 1, who));
  ASSERT_TRUE(o);
  EXPECT_EQ(o->who.host, "build-3");
  EXPECT_EQ(o->who.label, "x host=forged ");
}

TEST(OwnerRecord, LongFieldsAreCut) {
  auto who = someone();
  who.program = std::string(1000, 'p');
  auto o = redlock::decode_owner(redlock::encode_owner("v", 1, who));
  ASSERT_TRUE(o);
  EXPECT_EQ(o->who.program.size(), 256u);
}

TEST(OwnerRecord, GarbledTextIsNoRecord) {
  EXPECT_FALSE(redlock::decode_owner(""));
  EXPECT_FALSE(redlock::decode_owner("just-a-lock-value"));
  EXPECT_FALSE(redlock::decode_owner("v\nhost=h"));  // no since
  EXPECT_FALSE(redlock::decode_owner("\nsince=1"));  // no value
  EXPECT_FALSE(redlock::decode_owner("v\nsince=soon"));
}

TEST(OwnerRecord, ToStringNamesWhoAndWhenInUtc) {
  redlock::lock_owner o;
  o.value = "v";
  o.since = 1764768871120;  // 2025-12-03T13:34:31.120Z
  o.who = someone();
  EXPECT_EQ(redlock::to_string(o),
            "pid 4242 on build-3, program backup.sh, label nightly, since "
            "2025-12-03T13:34:31.120Z");
  o.who = {};
  o.since = 0;
  EXPECT_EQ(redlock::to_string(o), "");
}

TEST(OwnerRecord, ThisProcessKnowsItsPidAndProgram) {
  const auto me = redlock::this_process("lbl");
  EXPECT_GT(me.pid, 0);
  EXPECT_FALSE(me.host.empty());
  EXPECT_EQ(me.program, "unit_owner_test");
  EXPECT_EQ(me.label, "lbl");
}

TEST_F(Owner, OffTheWireIsNodeRedlocksScripts) {
  redlock::lock_manager m(io.get_executor(), d.nodes(), options());
  auto l = lock(m, "job");
  ASSERT_FALSE(l.ec) << l.ec.message();
  ASSERT_FALSE(unlock(m, l.value).ec);
  for (const auto& c : d[0].calls()) {
    EXPECT_FALSE(c.owner);
    EXPECT_EQ(c.keys, std::vector<std::string>{"job"});
    EXPECT_EQ(c.args.size(), 2u);
  }
  EXPECT_EQ(d[0].calls().front().kind, rt::script_kind::acquire);
}

TEST_F(Owner, AcquireWritesTheRecordWithTheLockAndTheSameTtl) {
  auto o = options();
  o.owner = someone();
  redlock::lock_manager m(io.get_executor(), d.nodes(), o);
  const auto before = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  auto l = lock(m, "job");
  ASSERT_FALSE(l.ec) << l.ec.message();
  for (std::size_t i = 0; i < d.size(); ++i) {
    EXPECT_EQ(d[i].value("job"), l.value.value());
    const auto text = d[i].value("{job}:redlock-owner");
    ASSERT_TRUE(text) << "server " << i;
    auto rec = redlock::decode_owner(*text);
    ASSERT_TRUE(rec);
    EXPECT_EQ(rec->value, l.value.value());
    EXPECT_EQ(rec->who.label, "nightly");
    EXPECT_GE(rec->since, before);
    EXPECT_EQ(d[i].ttl("{job}:redlock-owner"), d[i].ttl("job"));
  }
  const auto c = d[0].calls().front();
  EXPECT_TRUE(c.owner);
  EXPECT_EQ(c.keys, (std::vector<std::string>{"job", "{job}:redlock-owner"}));
}

TEST_F(Owner, ACallMayGiveItsOwnLabel) {
  auto o = options();
  o.owner = someone();
  redlock::lock_manager m(io.get_executor(), d.nodes(), o);
  redlock::call_options c;
  c.owner_label = "deploy #7";
  auto l = lock(m, "job", c);
  ASSERT_FALSE(l.ec);
  auto rec = redlock::decode_owner(d[1].value("{job}:redlock-owner").value_or(""));
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->who.label, "deploy #7");
  EXPECT_EQ(rec->who.host, "build-3");
}

TEST_F(Owner, ExtendProlongsTheRecordAndRewritesALostOne) {
  auto o = options();
  o.owner = someone();
  redlock::lock_manager m(io.get_executor(), d.nodes(), o);
  auto l = lock(m, "job");
  ASSERT_FALSE(l.ec);
  const auto first = d[0].value("{job}:redlock-owner");
  d.clock().advance(5s);
  // Server 2 lost only the record (someone deleted it): the extend writes it again.
  d[2].set_key("{job}:redlock-owner", "garbage");
  auto e = extend(m, l.value, 30s);
  ASSERT_FALSE(e.ec) << e.ec.message();
  for (std::size_t i = 0; i < d.size(); ++i) {
    EXPECT_EQ(d[i].value("{job}:redlock-owner"), first) << "server " << i;
    EXPECT_EQ(d[i].ttl("{job}:redlock-owner"), 30s);
  }
}

TEST_F(Owner, RecordExpiresWithTheLock) {
  auto o = options();
  o.owner = someone();
  redlock::lock_manager m(io.get_executor(), d.nodes(), o);
  auto l = lock(m, "job");
  ASSERT_FALSE(l.ec);
  d.clock().advance(10s);
  for (std::size_t i = 0; i < d.size(); ++i) {
    EXPECT_FALSE(d[i].value("job"));
    EXPECT_FALSE(d[i].value("{job}:redlock-owner"));
  }
}

TEST_F(Owner, UnlockRemovesOnlyOurRecord) {
  auto o = options();
  o.owner = someone();
  redlock::lock_manager m(io.get_executor(), d.nodes(), o);
  auto l = lock(m, "job");
  ASSERT_FALSE(l.ec);
  // On server 1 another value's record took the place of ours: it is not ours to delete.
  const auto foreign = redlock::encode_owner("other", 1, someone());
  d[1].set_key("{job}:redlock-owner", foreign);
  auto u = unlock(m, l.value);
  ASSERT_FALSE(u.ec);
  EXPECT_EQ(u.value.released, 3u);
  EXPECT_FALSE(d[0].value("{job}:redlock-owner"));
  EXPECT_EQ(d[1].value("{job}:redlock-owner"), foreign);
  EXPECT_FALSE(d[2].value("{job}:redlock-owner"));
  EXPECT_TRUE(d[0].store().empty());
}

TEST_F(Owner, AGarbledRecordChangesNoOutcome) {
  auto o = options();
  o.owner = someone();
  redlock::lock_manager m(io.get_executor(), d.nodes(), o);
  for (std::size_t i = 0; i < d.size(); ++i)
    d[i].set_key("{job}:redlock-owner", "not a record");
  auto l = lock(m, "job");
  ASSERT_FALSE(l.ec) << l.ec.message();
  EXPECT_TRUE(redlock::decode_owner(d[0].value("{job}:redlock-owner").value_or("")));
  // The lock key of another holder still excludes, record or not.
  redlock::lock_manager other(io.get_executor(), d.nodes(), o);
  EXPECT_EQ(lock(other, "job").ec, errc::resource_locked);
}

TEST_F(Owner, NotCombinedWithFencingOrFairMode) {
  auto o = options();
  o.owner = someone();
  redlock::lock_manager m(io.get_executor(), d.nodes(), o);
  redlock::call_options fenced;
  fenced.fencing = true;
  auto a = lock(m, "job", fenced);
  EXPECT_EQ(a.ec, errc::invalid_argument);
  EXPECT_NE(a.value.report().detail.find("fencing"), std::string::npos) << a.value.report().detail;
  redlock::call_options fair;
  fair.fair = true;
  auto b = lock(m, "job", fair);
  EXPECT_EQ(b.ec, errc::invalid_argument);
  EXPECT_NE(b.value.report().detail.find("fair mode"), std::string::npos);
  EXPECT_EQ(d[0].calls().size(), 0u);
}

TEST_F(Owner, AManagerWithOwnerAndFencingOrFairModeIsRefused) {
  for (int fair = 0; fair < 2; ++fair) {
    auto o = options();
    o.owner = someone();
    (fair ? o.fair : o.fencing) = true;
    try {
      redlock::lock_manager m(io.get_executor(), d.nodes(), o);
      ADD_FAILURE() << "accepted owner with " << (fair ? "fair mode" : "fencing");
    } catch (const redlock::lock_error& e) {
      EXPECT_EQ(e.code(), errc::invalid_argument);
      EXPECT_NE(std::string(e.what()).find(fair ? "fair mode" : "fencing"), std::string::npos)
          << e.what();
    }
  }
}

TEST_F(Owner, PrefixNamespacesEveryKeyButNotTheHandle) {
  auto o = options();
  o.key_prefix = "app:";
  o.owner = someone();
  redlock::lock_manager m(io.get_executor(), d.nodes(), o);
  auto l = lock(m, "job");
  ASSERT_FALSE(l.ec);
  EXPECT_EQ(l.value.resources(), std::vector<std::string>{"job"});
  EXPECT_EQ(d[0].value("app:job"), l.value.value());
  EXPECT_TRUE(d[0].value("{app:job}:redlock-owner"));
  EXPECT_FALSE(d[0].value("job"));
  auto e = extend(m, l.value, 20s);
  ASSERT_FALSE(e.ec);
  EXPECT_EQ(d[0].ttl("app:job"), 20s);
  ASSERT_FALSE(unlock(m, e.value).ec);
  EXPECT_TRUE(d[0].store().empty());
}

TEST_F(Owner, PrefixKeepsTheResourcesHashTag) {
  auto o = options();
  o.key_prefix = "app:";
  o.fencing = true;
  redlock::lock_manager m(io.get_executor(), d.nodes(), o);
  auto l = lock(m, "{user1}:cart");
  ASSERT_FALSE(l.ec) << l.ec.message();
  EXPECT_EQ(d[0].value("app:{user1}:cart"), l.value.value());
  EXPECT_EQ(d[0].value("app:{user1}:cart:redlock-fencing"), "1");
}

TEST_F(Owner, PrefixWithBracesIsRefused) {
  for (const char* bad : {"{app}:", "app}", "a{"}) {
    auto o = options();
    o.key_prefix = bad;
    try {
      redlock::lock_manager m(io.get_executor(), d.nodes(), o);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const redlock::lock_error& e) {
      EXPECT_EQ(e.code(), errc::invalid_argument);
      EXPECT_NE(std::string(e.what()).find("key_prefix"), std::string::npos);
    }
  }
}

TEST_F(Owner, ForceReleaseDeletesAnyHolderAndReportsItsOwner) {
  auto o = options();
  o.owner = someone();
  o.key_prefix = "app:";
  redlock::lock_manager holder(io.get_executor(), d.nodes(), o);
  auto l = lock(holder, "job");
  ASSERT_FALSE(l.ec);
  d[2].set_key("app:other", "x");  // a second resource, held on one server without a record
  // An operator's manager: another process, no owner metadata, the same prefix.
  redlock::manager_options same = options();
  same.key_prefix = "app:";
  redlock::lock_manager ops(io.get_executor(), d.nodes(), same);
  auto r = force(ops, {"job", "other"});
  ASSERT_FALSE(r.ec) << r.ec.message();
  ASSERT_EQ(r.value.nodes.size(), 3u);
  EXPECT_EQ(r.value.removed_nodes(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    const auto& n = r.value.nodes[i];
    ASSERT_TRUE(n.answered());
    EXPECT_EQ(n.values[0], l.value.value());
    ASSERT_TRUE(n.owners[0]);
    EXPECT_EQ(n.owners[0]->who.pid, 4242);
    EXPECT_EQ(n.values[1], i == 2 ? std::optional<std::string>("x") : std::nullopt);
    EXPECT_FALSE(n.owners[1]);
    EXPECT_TRUE(d[i].store().empty()) << "server " << i;
  }
  // The holder's unlock finds nothing: its lock is gone.
  auto u = unlock(holder, l.value);
  EXPECT_EQ(u.value.released, 0u);
}

TEST_F(Owner, ForceReleaseOfAFreeResourceRemovesNothing) {
  redlock::lock_manager m(io.get_executor(), d.nodes(), options());
  auto r = force(m, {"job"});
  ASSERT_FALSE(r.ec);
  EXPECT_EQ(r.value.answered_nodes(), 3u);
  EXPECT_EQ(r.value.removed_nodes(), 0u);
}

TEST_F(Owner, ForceReleaseReportsNodeFailuresPerNode) {
  d[1].go_down();
  redlock::lock_manager m(io.get_executor(), d.nodes(), options());
  auto r = force(m, {"job"});
  ASSERT_FALSE(r.ec);
  EXPECT_EQ(r.value.answered_nodes(), 2u);
  EXPECT_EQ(r.value.nodes[1].ec, errc::connect_failed);
  EXPECT_TRUE(r.value.nodes[1].values.empty());
}

TEST_F(Owner, ForceReleaseRefusesBadResources) {
  redlock::lock_manager m(io.get_executor(), d.nodes(), options());
  EXPECT_EQ(force(m, {}).ec, errc::invalid_argument);
  EXPECT_EQ(force(m, {"a", "a"}).ec, errc::invalid_argument);
}

TEST(OwnerInspection, DecideNamesTheHoldersRecord) {
  redlock::inspection in;
  in.resources = {"job"};
  in.quorum = 2;
  for (int i = 0; i < 3; ++i) {
    redlock::node_state n;
    n.node = "n" + std::to_string(i);
    redlock::key_state k;
    k.present = true;
    k.value = "v";
    k.ttl = 5000ms;
    if (i == 1)
      k.owner = redlock::decode_owner(redlock::encode_owner("v", 7, someone()));
    n.keys.push_back(k);
    in.nodes.push_back(n);
  }
  redlock::detail::decide(in, 0.01, redlock::steady_clock::now());
  ASSERT_TRUE(in.held());
  ASSERT_TRUE(in.owner);
  EXPECT_EQ(in.owner->since, 7);
  EXPECT_NE(in.to_string().find("(pid 4242 on build-3"), std::string::npos) << in.to_string();
}

}  // namespace
