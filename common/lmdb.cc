#include "common/lmdb.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

namespace zb::lmdb {

Status from_rc(int rc, std::string_view what) {
  if (rc == MDB_SUCCESS) return Status::ok();
  // No room: the map (MDB_MAP_FULL) or the filesystem under it (ENOSPC, EDQUOT). LMDB reports
  // a short write as EIO, which a full filesystem also causes; that stays kIo.
  Code code = rc == MDB_MAP_FULL || rc == ENOSPC || rc == EDQUOT ? Code::kStorageFull : Code::kIo;
  return Status(code, std::string(what) + ": " + mdb_strerror(rc));
}

Result<Env> Env::open(const std::string& dir, const EnvOptions& options) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status(Code::kIo, "cannot create data folder " + dir + ": " + ec.message());
  MDB_env* env = nullptr;
  if (int rc = mdb_env_create(&env)) return from_rc(rc, "mdb_env_create");
  Env out(env, options);
  if (int rc = mdb_env_set_maxdbs(env, options.max_dbs)) return from_rc(rc, "mdb_env_set_maxdbs");
  // An existing file larger than map_bytes keeps its size: LMDB adopts the larger one.
  if (int rc = mdb_env_set_mapsize(env, options.map_bytes)) return from_rc(rc, "mdb_env_set_mapsize");
  if (int rc = mdb_env_set_maxreaders(env, 126)) return from_rc(rc, "mdb_env_set_maxreaders");
  // Not MDB_WRITEMAP: LMDB then writes pages with pwrite(), so a full filesystem is an error
  // (ENOSPC or EIO) from mdb_txn_commit that aborts the transaction and leaves the file as it
  // was. With a writable map, a page of a sparse file that the filesystem cannot back is a
  // SIGBUS that kills the process.
  unsigned flags = MDB_NOTLS;
  if (!options.sync) flags |= MDB_NOSYNC;
  if (int rc = mdb_env_open(env, dir.c_str(), flags, 0644))
    return from_rc(rc, "cannot open LMDB in " + dir);
  int dead = 0;
  mdb_reader_check(env, &dead);  // clear reader slots left by a killed process
  return out;
}

Env::Env(Env&& other) noexcept
    : env_(std::exchange(other.env_, nullptr)), options_(other.options_) {}

Env& Env::operator=(Env&& other) noexcept {
  if (this != &other) {
    if (env_) mdb_env_close(env_);
    env_ = std::exchange(other.env_, nullptr);
    options_ = other.options_;
  }
  return *this;
}

Env::~Env() {
  if (env_) mdb_env_close(env_);
}

uint64_t Env::used_bytes() const {
  MDB_envinfo info;
  MDB_stat st;
  mdb_env_info(env_, &info);
  mdb_env_stat(env_, &st);
  return static_cast<uint64_t>(info.me_last_pgno + 1) * st.ms_psize;
}

uint64_t Env::map_bytes() const {
  MDB_envinfo info;
  mdb_env_info(env_, &info);
  return info.me_mapsize;
}

Status Env::grow() {
  uint64_t current = map_bytes();
  if (current >= options_.max_map_bytes)
    return Status(Code::kStorageFull, "LMDB map is at its maximum of " +
                                          std::to_string(options_.max_map_bytes) + " bytes");
  uint64_t next = std::min(current * 2, options_.max_map_bytes);
  return from_rc(mdb_env_set_mapsize(env_, next), "mdb_env_set_mapsize");
}

Status Env::ensure_free(uint64_t free_bytes) {
  while (map_bytes() - std::min(map_bytes(), used_bytes()) < free_bytes) {
    if (Status s = grow(); !s) return s;
  }
  return Status::ok();
}

Status Env::sync(bool force) { return from_rc(mdb_env_sync(env_, force ? 1 : 0), "mdb_env_sync"); }

Result<Txn> Txn::begin(const Env& env, bool read_only) {
  MDB_txn* txn = nullptr;
  if (int rc = mdb_txn_begin(env.get(), nullptr, read_only ? MDB_RDONLY : 0, &txn))
    return from_rc(rc, "mdb_txn_begin");
  return Txn(txn);
}

Txn::Txn(Txn&& other) noexcept : txn_(std::exchange(other.txn_, nullptr)), writes_(std::exchange(other.writes_, 0)) {}

Txn& Txn::operator=(Txn&& other) noexcept {
  if (this != &other) {
    abort();
    txn_ = std::exchange(other.txn_, nullptr);
    writes_ = std::exchange(other.writes_, 0);
  }
  return *this;
}

Txn::~Txn() { abort(); }

void Txn::abort() {
  if (txn_) mdb_txn_abort(std::exchange(txn_, nullptr));
}

Status Txn::commit() {
  if (!txn_) return Status(Code::kInternal, "commit of a finished transaction");
  return from_rc(mdb_txn_commit(std::exchange(txn_, nullptr)), "mdb_txn_commit");
}

Result<Dbi> Txn::open_db(const char* name, unsigned flags) {
  Dbi dbi = 0;
  if (int rc = mdb_dbi_open(txn_, name, flags, &dbi))
    return from_rc(rc, std::string("mdb_dbi_open ") + name);
  return dbi;
}

namespace {
MDB_val val(std::string_view s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }
}  // namespace

Result<std::optional<std::string_view>> Txn::get(Dbi dbi, std::string_view key) {
  MDB_val k = val(key), v{0, nullptr};
  int rc = mdb_get(txn_, dbi, &k, &v);
  if (rc == MDB_NOTFOUND) return std::optional<std::string_view>{};
  if (rc) return from_rc(rc, "mdb_get");
  return std::optional<std::string_view>{std::string_view(static_cast<const char*>(v.mv_data), v.mv_size)};
}

Status Txn::put(Dbi dbi, std::string_view key, std::string_view value, unsigned flags) {
  MDB_val k = val(key), v = val(value);
  ++writes_;
  return from_rc(mdb_put(txn_, dbi, &k, &v, flags), "mdb_put");
}

Status Txn::del(Dbi dbi, std::string_view key) {
  MDB_val k = val(key);
  ++writes_;
  int rc = mdb_del(txn_, dbi, &k, nullptr);
  if (rc == MDB_NOTFOUND) return Status::ok();
  return from_rc(rc, "mdb_del");
}

Status Txn::drop(Dbi dbi) { return from_rc(mdb_drop(txn_, dbi, 0), "mdb_drop"); }

Result<uint64_t> Txn::count(Dbi dbi) {
  MDB_stat st;
  if (int rc = mdb_stat(txn_, dbi, &st)) return from_rc(rc, "mdb_stat");
  return static_cast<uint64_t>(st.ms_entries);
}

Result<Cursor> Cursor::open(Txn& txn, Dbi dbi) {
  MDB_cursor* c = nullptr;
  if (int rc = mdb_cursor_open(txn.get(), dbi, &c)) return from_rc(rc, "mdb_cursor_open");
  return Cursor(c);
}

Cursor::Cursor(Cursor&& other) noexcept
    : c_(std::exchange(other.c_, nullptr)), k_(other.k_), v_(other.v_) {}

Cursor& Cursor::operator=(Cursor&& other) noexcept {
  if (this != &other) {
    if (c_) mdb_cursor_close(c_);
    c_ = std::exchange(other.c_, nullptr);
    k_ = other.k_;
    v_ = other.v_;
  }
  return *this;
}

Cursor::~Cursor() {
  if (c_) mdb_cursor_close(c_);
}

bool Cursor::move(MDB_cursor_op op) { return mdb_cursor_get(c_, &k_, &v_, op) == MDB_SUCCESS; }
bool Cursor::first() { return move(MDB_FIRST); }
bool Cursor::last() { return move(MDB_LAST); }
bool Cursor::next() { return move(MDB_NEXT); }
bool Cursor::prev() { return move(MDB_PREV); }
bool Cursor::seek(std::string_view key) {
  k_ = val(key);
  return move(MDB_SET_RANGE);
}

Status Cursor::del() { return from_rc(mdb_cursor_del(c_, 0), "mdb_cursor_del"); }

std::string be64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 7; i >= 0; --i) {
    s[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  return s;
}

uint64_t from_be64(std::string_view bytes) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = v << 8 | static_cast<uint8_t>(bytes[i]);
  return v;
}

}  // namespace zb::lmdb
