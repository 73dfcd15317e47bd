// The durable commit record and its restore after an OS restart (router/durability.h), on real
// LMDB files: what a loop turn would commit, then a "reboot" (another boot id).
#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "common/id.h"
#include "common/lmdb.h"
#include "router/durability.h"

namespace zb::router {
namespace {

class DurabilityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (std::filesystem::temp_directory_path() / ("zbatch-durable-" + Id::random().to_string())).string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  lmdb::Env open_env() {
    lmdb::EnvOptions o;
    o.map_bytes = 64ull << 20;
    o.sync = false;
    auto env = lmdb::Env::open(dir_, o);
    EXPECT_TRUE(env.is_ok()) << env.status().to_string();
    return std::move(env.value());
  }
  // One committed transaction writing key "k" = value (and some bulk, so pages move).
  uint64_t put(lmdb::Env& env, const std::string& value) {
    auto txn = lmdb::Txn::begin(env, false);
    EXPECT_TRUE(txn.is_ok());
    auto dbi = txn->open_db("d", MDB_CREATE);
    EXPECT_TRUE(dbi.is_ok());
    EXPECT_TRUE(txn->put(*dbi, "k", value).is_ok());
    for (int i = 0; i < 200; ++i) EXPECT_TRUE(txn->put(*dbi, "bulk" + std::to_string(i), value + std::string(300, 'x')).is_ok());
    const uint64_t id = txn->id();
    EXPECT_TRUE(txn->commit().is_ok());
    return id;
  }
  std::string get(lmdb::Env& env) {
    auto txn = lmdb::Txn::begin(env, true);
    auto dbi = txn->open_db("d");
    if (!dbi.is_ok()) return "<no db>";
    auto v = txn->get(*dbi, "k");
    return v.is_ok() && v->has_value() ? std::string(**v) : "<none>";
  }

  std::string dir_;
};

TEST_F(DurabilityTest, ARecordedCommitIsDurableAndTheLoopIsToldSo) {
  lmdb::Env env = open_env();
  auto d = Durability::start(env, dir_, "boot-a");
  ASSERT_TRUE(d.is_ok()) << d.status().to_string();
  const uint64_t txn = put(env, "one");
  (*d)->committed(txn);
  ASSERT_TRUE((*d)->wait(txn, 10'000));
  EXPECT_GE((*d)->durable(), txn);
  EXPECT_TRUE((*d)->error().is_ok());
  EXPECT_GE((*d)->syncs(), 1u);
}

TEST_F(DurabilityTest, SameBootKeepsTheNewestCommit) {
  {
    lmdb::Env env = open_env();
    auto d = Durability::start(env, dir_, "boot-a");
    ASSERT_TRUE(d.is_ok());
    const uint64_t one = put(env, "one");
    (*d)->committed(one);
    ASSERT_TRUE((*d)->wait(one, 10'000));
    // Committed, never reported durable: a process crash keeps it in the page cache.
    put(env, "two");
    d->reset();  // nothing pending: no record past "one", as if killed
  }
  auto r = Durability::restore(dir_, "boot-a");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_FALSE(r->restored);
  lmdb::Env env = open_env();
  EXPECT_EQ(get(env), "two");
}

TEST_F(DurabilityTest, AnotherBootRestoresTheLastDurableCommitEvenWhenLaterPagesNeverReachedTheDisk) {
  uint64_t durable = 0, newest = 0;
  {
    lmdb::Env env = open_env();
    auto d = Durability::start(env, dir_, "boot-a");
    ASSERT_TRUE(d.is_ok());
    durable = put(env, "durable");
    (*d)->committed(durable);
    ASSERT_TRUE((*d)->wait(durable, 10'000));
    // More commits, none recorded: the sync thread gets no request (an OS crash before it ran).
    for (int i = 0; i < 20; ++i) newest = put(env, "lost" + std::to_string(i));
    d->reset();
  }
  ASSERT_GT(newest, durable);
  // Pages past the durable commit's last page are lost with the power: zero them. (The
  // record's slots: magic 8, txn 8, boot id 40, then LMDB's meta, whose last page is at 120.)
  {
    int rfd = ::open((dir_ + "/durable").c_str(), O_RDONLY);
    ASSERT_GE(rfd, 0);
    uint64_t last_page = 0;
    for (off_t slot = 0; slot < 2; ++slot) {
      uint64_t txn = 0, last = 0;
      ASSERT_EQ(::pread(rfd, &txn, 8, slot * 512 + 8), 8);
      ASSERT_EQ(::pread(rfd, &last, 8, slot * 512 + 56 + 120), 8);
      if (txn == durable) last_page = last;
    }
    ::close(rfd);
    ASSERT_GT(last_page, 1u);
    const off_t page = 4096;
    int fd = ::open((dir_ + "/data.mdb").c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    const off_t size = ::lseek(fd, 0, SEEK_END);
    ASSERT_GT(size, static_cast<off_t>((last_page + 1) * page)) << "later commits grew the file";
    ASSERT_EQ(::ftruncate(fd, static_cast<off_t>((last_page + 1) * page)), 0);
    ASSERT_EQ(::ftruncate(fd, size), 0);  // the same size, the lost pages zero
    ::close(fd);
  }
  auto r = Durability::restore(dir_, "boot-b");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_TRUE(r->restored);
  EXPECT_EQ(r->durable_txn, durable);
  EXPECT_EQ(r->dropped_txn, newest);
  {
    lmdb::Env env = open_env();
    EXPECT_EQ(get(env), "durable");
    // The router records the restored commit on the new boot before it writes anything.
    auto d = Durability::start(env, dir_, "boot-b");
    ASSERT_TRUE(d.is_ok());
    const uint64_t after = put(env, "after");
    (*d)->committed(after);
    ASSERT_TRUE((*d)->wait(after, 10'000));
    EXPECT_EQ(get(env), "after");
  }
  // A second start on the new boot restores nothing more.
  auto again = Durability::restore(dir_, "boot-b");
  ASSERT_TRUE(again.is_ok());
  EXPECT_EQ(again->restored, false);
}

TEST_F(DurabilityTest, AnUnreadableRecordRestoresNothingAndAGarbledDataFileIsRefused) {
  {
    lmdb::Env env = open_env();
    auto d = Durability::start(env, dir_, "boot-a");
    ASSERT_TRUE(d.is_ok());
  }
  // Garbage over LMDB's first meta page: restore refuses rather than guessing.
  {
    int fd = ::open((dir_ + "/data.mdb").c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    const std::string junk(64, '\x5a');
    ASSERT_EQ(::pwrite(fd, junk.data(), junk.size(), 16), static_cast<ssize_t>(junk.size()));
    ::close(fd);
  }
  auto refused = Durability::restore(dir_, "boot-b");
  EXPECT_FALSE(refused.is_ok());
  // A record of junk is not trusted: nothing is restored.
  {
    int fd = ::open((dir_ + "/durable").c_str(), O_RDWR | O_TRUNC);
    ASSERT_GE(fd, 0);
    const std::string junk(1024, '\x33');
    ASSERT_EQ(::write(fd, junk.data(), junk.size()), static_cast<ssize_t>(junk.size()));
    ::close(fd);
  }
  auto none = Durability::restore(dir_, "boot-b");
  ASSERT_TRUE(none.is_ok());
  EXPECT_FALSE(none->restored);
}

}  // namespace
}  // namespace zb::router
