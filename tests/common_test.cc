#include <gtest/gtest.h>

#include <filesystem>

#include "common/id.h"
#include "common/lmdb.h"
#include "common/task.h"

namespace zb {
namespace {

TEST(Id, RoundTripsThroughText) {
  Id id = Id::random();
  auto parsed = Id::parse(id.to_string());
  ASSERT_TRUE(parsed);
  EXPECT_EQ(*parsed, id);
  EXPECT_EQ(id.to_string().size(), 36u);
  EXPECT_EQ(id.to_string()[14], '4');  // version nibble
}

TEST(Id, AcceptsHexWithoutDashes) {
  auto id = Id::parse("0123456789abcdef0123456789ABCDEF");
  ASSERT_TRUE(id);
  EXPECT_EQ(id->to_string(), "01234567-89ab-cdef-0123-456789abcdef");
}

TEST(Id, RejectsMalformedText) {
  for (const char* bad : {"", "xyz", "01234567-89ab-cdef-0123-456789abcdeg",
                          "01234567+89ab-cdef-0123-456789abcdef", "0123456789abcdef0123456789abcde",
                          "01234567-89ab-cdef-0123-456789abcdef0"})
    EXPECT_FALSE(Id::parse(bad)) << bad;
}

TEST(Id, NilIsAllZero) {
  EXPECT_TRUE(Id().is_nil());
  EXPECT_FALSE(Id::random().is_nil());
  EXPECT_FALSE(Id::from_bytes("short"));
}

TEST(TaskState, TransitionsFollowTheLifeCycle) {
  using S = TaskState;
  // The full table: every (from, to) pair, written out so a change is a deliberate edit here.
  const bool allowed[kTaskStateCount][kTaskStateCount] = {
      //            sched  queued start  retry  succ   fail   revoked waiting
      /*sched*/    {false, true,  false, false, false, false, true,  false},
      /*queued*/   {false, false, true,  true,  true,  true,  true,  false},
      /*started*/  {false, true,  false, true,  true,  true,  true,  false},
      /*retrying*/ {false, true,  false, false, false, false, true,  false},
      /*succ*/     {false, false, false, false, false, false, false, false},
      /*failed*/   {false, true,  false, false, false, false, false, true},
      /*revoked*/  {false, true,  false, false, false, false, false, true},
      /*waiting*/  {true,  true,  false, false, false, true,  true,  false},
  };
  for (int f = 0; f < kTaskStateCount; ++f)
    for (int t = 0; t < kTaskStateCount; ++t)
      EXPECT_EQ(can_transition(static_cast<S>(f), static_cast<S>(t)), allowed[f][t])
          << state_name(static_cast<S>(f)) << " -> " << state_name(static_cast<S>(t));
}

TEST(TaskState, NamesRoundTrip) {
  for (int i = 0; i < kTaskStateCount; ++i) {
    auto s = static_cast<TaskState>(i);
    EXPECT_EQ(parse_state(state_name(s)), s);
  }
  EXPECT_FALSE(parse_state("bogus"));
  EXPECT_FALSE(state_from_byte(kTaskStateCount));
}

class LmdbTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("zbatch-lmdb-" + Id::random().to_string());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

TEST_F(LmdbTest, PersistsCommittedWritesAcrossReopen) {
  {
    auto env = lmdb::Env::open(dir_.string(), {});
    ASSERT_TRUE(env) << env.status().to_string();
    auto txn = lmdb::Txn::begin(*env, false);
    ASSERT_TRUE(txn);
    auto db = txn->open_db("t", MDB_CREATE);
    ASSERT_TRUE(db);
    ASSERT_TRUE(txn->put(*db, "k", "v"));
    ASSERT_TRUE(txn->commit());
    auto aborted = lmdb::Txn::begin(*env, false);
    ASSERT_TRUE(aborted->put(*db, "gone", "x"));
    // destructor aborts
  }
  auto env = lmdb::Env::open(dir_.string(), {});
  ASSERT_TRUE(env);
  auto txn = lmdb::Txn::begin(*env, true);
  auto db = txn->open_db("t");
  ASSERT_TRUE(db);
  auto v = txn->get(*db, "k");
  ASSERT_TRUE(v && v->has_value());
  EXPECT_EQ(**v, "v");
  auto gone = txn->get(*db, "gone");
  ASSERT_TRUE(gone);
  EXPECT_FALSE(gone->has_value());
}

TEST_F(LmdbTest, BigEndianKeysIterateInNumericOrder) {
  auto env = lmdb::Env::open(dir_.string(), {});
  ASSERT_TRUE(env);
  auto txn = lmdb::Txn::begin(*env, false);
  auto db = txn->open_db("seq", MDB_CREATE);
  for (uint64_t v : {300ull, 1ull, 70000ull, 256ull}) ASSERT_TRUE(txn->put(*db, lmdb::be64(v), ""));
  auto c = lmdb::Cursor::open(*txn, *db);
  ASSERT_TRUE(c);
  std::vector<uint64_t> seen;
  for (bool ok = c->first(); ok; ok = c->next()) seen.push_back(lmdb::from_be64(c->key()));
  EXPECT_EQ(seen, (std::vector<uint64_t>{1, 256, 300, 70000}));
  ASSERT_TRUE(c->seek(lmdb::be64(257)));
  EXPECT_EQ(lmdb::from_be64(c->key()), 300u);
}

TEST_F(LmdbTest, FullMapIsStorageFullThenGrows) {
  lmdb::EnvOptions options;
  options.map_bytes = 1 << 20;
  options.max_map_bytes = 4 << 20;
  auto env = lmdb::Env::open(dir_.string(), options);
  ASSERT_TRUE(env);
  std::string value(4000, 'x');
  Status last;
  {
    auto txn = lmdb::Txn::begin(*env, false);
    auto db = txn->open_db("big", MDB_CREATE);
    for (int i = 0; i < 1000 && last.is_ok(); ++i) last = txn->put(*db, lmdb::be64(i), value);
  }
  EXPECT_EQ(last.code(), Code::kStorageFull);
  ASSERT_TRUE(env->grow());
  EXPECT_EQ(env->map_bytes(), 2u << 20);
  ASSERT_TRUE(env->grow());
  EXPECT_EQ(env->grow().code(), Code::kStorageFull);  // at max
}

}  // namespace
}  // namespace zb

namespace zb {
namespace {

TEST(Id, TimeOrderedIdsSortInCreationOrder) {
  Id prev = Id::time_ordered();
  for (int i = 0; i < 100000; ++i) {
    Id next = Id::time_ordered();
    ASSERT_LT(prev, next) << i;
    prev = next;
  }
  EXPECT_EQ(prev.to_string()[14], '7');
}

}  // namespace
}  // namespace zb
