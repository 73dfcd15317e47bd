// A thin RAII layer over LMDB: an environment, transactions, named databases, cursors.
//
// Thread-safety is LMDB's: one Env per process per path (never open the same path twice in one
// process), any number of read transactions, one write transaction at a time. Values returned
// as string_view point into the map and are valid only until the transaction ends.
//
// Errors are Status values; MDB_MAP_FULL, ENOSPC and EDQUOT are Code::kStorageFull so the
// caller can grow the map (Env::grow) or refuse new work. A failed commit leaves the database
// as it was before the transaction (the environment stays usable); pages are written with
// pwrite(), never through a writable map, so a full filesystem is an error, not a SIGBUS.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <lmdb.h>

#include "common/status.h"

namespace zb::lmdb {

struct EnvOptions {
  uint64_t map_bytes = 1ull << 30;       // initial map size; the file grows as used
  uint64_t max_map_bytes = 64ull << 30;  // Env::grow stops here
  unsigned max_dbs = 16;
  bool sync = true;  // false = MDB_NOSYNC: a process crash loses nothing, an OS crash may
};

class Env {
 public:
  static Result<Env> open(const std::string& dir, const EnvOptions& options);
  Env(Env&& other) noexcept;
  Env& operator=(Env&& other) noexcept;
  Env(const Env&) = delete;
  Env& operator=(const Env&) = delete;
  ~Env();

  MDB_env* get() const { return env_; }
  // Bytes of the map in use (last page number × page size).
  uint64_t used_bytes() const;
  uint64_t map_bytes() const;
  // Doubles the map (no transaction may be open). kStorageFull at max_map_bytes.
  Status grow();
  // Grows until at least `free_bytes` are free, or fails with kStorageFull.
  Status ensure_free(uint64_t free_bytes);
  Status sync(bool force);

 private:
  explicit Env(MDB_env* env, EnvOptions options) : env_(env), options_(options) {}
  MDB_env* env_ = nullptr;
  EnvOptions options_;
};

using Dbi = MDB_dbi;

class Txn {
 public:
  static Result<Txn> begin(const Env& env, bool read_only);
  Txn(Txn&& other) noexcept;
  Txn& operator=(Txn&& other) noexcept;
  Txn(const Txn&) = delete;
  Txn& operator=(const Txn&) = delete;
  ~Txn();  // aborts if neither committed nor aborted

  // Opens (and, in a write txn, creates) a named database.
  Result<Dbi> open_db(const char* name, unsigned flags = 0);
  Result<std::optional<std::string_view>> get(Dbi dbi, std::string_view key);
  Status put(Dbi dbi, std::string_view key, std::string_view value, unsigned flags = 0);
  // OK when the key was absent too.
  Status del(Dbi dbi, std::string_view key);
  Status drop(Dbi dbi);  // empties the database
  Result<uint64_t> count(Dbi dbi);
  Status commit();
  void abort();

  MDB_txn* get() const { return txn_; }
  uint64_t id() const { return txn_ ? mdb_txn_id(txn_) : 0; }
  // Records put or deleted so far (cursor deletes not counted).
  uint64_t writes() const { return writes_; }

 private:
  explicit Txn(MDB_txn* txn) : txn_(txn) {}
  MDB_txn* txn_ = nullptr;
  uint64_t writes_ = 0;
};

// A cursor must be destroyed before its transaction commits or aborts (LMDB frees a write
// transaction's cursors with it).
class Cursor {
 public:
  static Result<Cursor> open(Txn& txn, Dbi dbi);
  Cursor(Cursor&& other) noexcept;
  Cursor& operator=(Cursor&& other) noexcept;
  Cursor(const Cursor&) = delete;
  Cursor& operator=(const Cursor&) = delete;
  ~Cursor();

  // Positioning; each returns false at the end (or when nothing matches).
  bool first();
  bool last();
  bool next();
  bool prev();
  bool seek(std::string_view key);  // first key >= key
  std::string_view key() const { return {static_cast<const char*>(k_.mv_data), k_.mv_size}; }
  std::string_view value() const { return {static_cast<const char*>(v_.mv_data), v_.mv_size}; }
  Status del();  // deletes the current entry; next() then moves to the entry after it

 private:
  explicit Cursor(MDB_cursor* c) : c_(c) {}
  bool move(MDB_cursor_op op);
  MDB_cursor* c_ = nullptr;
  MDB_val k_{0, nullptr};
  MDB_val v_{0, nullptr};
};

// Big-endian fixed-width integers as keys, so memcmp order is numeric order.
std::string be64(uint64_t v);
uint64_t from_be64(std::string_view bytes);  // bytes.size() must be >= 8

Status from_rc(int rc, std::string_view what);

}  // namespace zb::lmdb
