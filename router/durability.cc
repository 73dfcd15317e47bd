#include "router/durability.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "common/log.h"

namespace zb::router {
namespace {

// LMDB 0.9's meta page: a 16-byte page header, then MDB_meta: magic (u32), version (u32),
// address (8), map size (8), the free and main databases (48 bytes each; the free database's
// first field holds the page size), last page (8), txnid (8).
constexpr size_t kPageHeader = 16;
constexpr uint32_t kLmdbMagic = 0xBEEFC0DE;
constexpr uint32_t kLmdbVersion = 1;
constexpr size_t kMetaPageSizeAt = 24;
constexpr size_t kMetaTxnAt = 128;

// The record: two slots, one per 512-byte sector, written alternately; the valid slot with
// the higher txn wins.
constexpr char kRecordMagic[8] = {'Z', 'B', 'D', 'U', 'R', '0', '0', '1'};
constexpr size_t kBootBytes = 40;
constexpr size_t kSlotBytes = 8 + 8 + kBootBytes + kLmdbMetaBytes + 8;
constexpr off_t kSlotStride = 512;

template <typename T>
T load(const unsigned char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

uint64_t fnv1a(const unsigned char* p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

struct Record {
  uint64_t txn = 0;
  std::string boot_id;
  unsigned char meta[kLmdbMetaBytes] = {};
};

void encode_slot(const Record& r, unsigned char* out) {
  std::memset(out, 0, kSlotBytes);
  std::memcpy(out, kRecordMagic, 8);
  std::memcpy(out + 8, &r.txn, 8);
  std::memcpy(out + 16, r.boot_id.data(), std::min(r.boot_id.size(), kBootBytes));
  std::memcpy(out + 16 + kBootBytes, r.meta, kLmdbMetaBytes);
  const uint64_t sum = fnv1a(out, kSlotBytes - 8);
  std::memcpy(out + kSlotBytes - 8, &sum, 8);
}

std::optional<Record> decode_slot(const unsigned char* in) {
  if (std::memcmp(in, kRecordMagic, 8) != 0) return std::nullopt;
  if (load<uint64_t>(in + kSlotBytes - 8) != fnv1a(in, kSlotBytes - 8)) return std::nullopt;
  Record r;
  r.txn = load<uint64_t>(in + 8);
  const char* boot = reinterpret_cast<const char*>(in + 16);
  r.boot_id.assign(boot, strnlen(boot, kBootBytes));
  std::memcpy(r.meta, in + 16 + kBootBytes, kLmdbMetaBytes);
  return r;
}

// Both slots; index of the newest valid one (-1: none).
struct Slots {
  std::optional<Record> slot[2];
  int newest() const {
    if (slot[0] && slot[1]) return slot[1]->txn > slot[0]->txn ? 1 : 0;
    return slot[0] ? 0 : slot[1] ? 1 : -1;
  }
};

Slots read_slots(int fd) {
  Slots out;
  for (int i = 0; i < 2; ++i) {
    unsigned char buf[kSlotBytes];
    if (::pread(fd, buf, kSlotBytes, i * kSlotStride) == static_cast<ssize_t>(kSlotBytes)) out.slot[i] = decode_slot(buf);
  }
  return out;
}

Status errno_status(const std::string& what) { return Status(Code::kIo, what + ": " + std::strerror(errno)); }

bool full_pwrite(int fd, const unsigned char* p, size_t n, off_t at) {
  while (n > 0) {
    ssize_t w = ::pwrite(fd, p, n, at);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
    at += w;
  }
  return true;
}

bool meta_valid(const unsigned char* meta) {
  return load<uint32_t>(meta) == kLmdbMagic && load<uint32_t>(meta + 4) == kLmdbVersion;
}

}  // namespace

std::string current_boot_id() {
  if (const char* forced = std::getenv("ZBATCH_BOOT_ID"); forced && *forced) return forced;
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(in, id);
  return id.substr(0, kBootBytes);
}

Result<RestoreReport> Durability::restore(const std::string& dir, const std::string& boot_id) {
  RestoreReport report;
  const std::string record_path = dir + "/durable";
  int rfd = ::open(record_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (rfd < 0) return report;  // a new folder, or one written before records existed
  Slots slots = read_slots(rfd);
  ::close(rfd);
  const int newest = slots.newest();
  if (newest < 0) {
    spdlog::warn("router durable record unreadable path={}: LMDB's newest commit is kept", record_path);
    return report;
  }
  const Record& rec = *slots.slot[newest];
  if (boot_id.empty() || rec.boot_id == boot_id) return report;  // same boot: the page cache kept everything

  const std::string data_path = dir + "/data.mdb";
  int fd = ::open(data_path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return errno_status("open " + data_path);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  unsigned char meta[2][kLmdbMetaBytes];
  if (::pread(fd, meta[0], kLmdbMetaBytes, kPageHeader) != static_cast<ssize_t>(kLmdbMetaBytes))
    return Status(Code::kIo, data_path + ": cannot read its first meta page");
  if (!meta_valid(meta[0]) || !meta_valid(rec.meta))
    return Status(Code::kIo, data_path + ": not an LMDB 0.9 file this router can restore");
  const uint32_t page = load<uint32_t>(meta[0] + kMetaPageSizeAt);
  if (page < 512 || page > 65536 || page != load<uint32_t>(rec.meta + kMetaPageSizeAt))
    return Status(Code::kIo, data_path + ": page size does not match its durable record");
  if (::pread(fd, meta[1], kLmdbMetaBytes, page + kPageHeader) != static_cast<ssize_t>(kLmdbMetaBytes))
    return Status(Code::kIo, data_path + ": cannot read its second meta page");
  // A torn meta page is past the durable commit by construction; only a valid one counts.
  uint64_t on_disk = 0;
  for (const auto& m : meta)
    if (meta_valid(m)) on_disk = std::max(on_disk, load<uint64_t>(m + kMetaTxnAt));
  if (on_disk < rec.txn)
    return Status(Code::kIo, data_path + " is older (commit " + std::to_string(on_disk) +
                                 ") than its durable record (commit " + std::to_string(rec.txn) + ")");
  const bool torn = !meta_valid(meta[0]) || !meta_valid(meta[1]);
  report.machine_restarted = true;
  report.durable_txn = rec.txn;
  if (on_disk == rec.txn && !torn) return report;  // the newest commit was the durable one
  for (off_t slot = 0; slot < 2; ++slot)
    if (!full_pwrite(fd, rec.meta, kLmdbMetaBytes, slot * page + kPageHeader))
      return errno_status("restore meta page of " + data_path);
  if (::fdatasync(fd) != 0) return errno_status("fdatasync " + data_path);
  report.restored = true;
  report.durable_txn = rec.txn;
  report.dropped_txn = on_disk;
  return report;
}

Result<std::unique_ptr<Durability>> Durability::start(lmdb::Env& env, const std::string& dir,
                                                      const std::string& boot_id) {
  const std::string record_path = dir + "/durable";
  int rfd = ::open(record_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (rfd < 0) return errno_status("open " + record_path);
  int efd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (efd < 0) {
    ::close(rfd);
    return errno_status("eventfd");
  }
  std::unique_ptr<Durability> d(new Durability(env.get(), rfd, efd, boot_id));
  const int newest = read_slots(rfd).newest();
  d->record_writes_ = newest < 0 ? 0 : static_cast<uint64_t>(newest + 1);

  // Whatever an earlier process committed is made durable and recorded before anything is
  // written: from here on the recorded commit's pages stay pinned.
  MDB_envinfo info;
  mdb_env_info(env.get(), &info);
  Request first;
  first.txn = info.me_last_txnid;
  if (int rc = mdb_txn_begin(env.get(), nullptr, MDB_RDONLY, &first.pin))
    return lmdb::from_rc(rc, "mdb_txn_begin (durable pin)");
  if (!d->copy_meta(first.txn, first.meta)) {
    mdb_txn_abort(first.pin);
    return Status(Code::kIo, dir + "/data.mdb: its meta page is not LMDB 0.9's");
  }
  if (Status s = d->sync_and_record(first); !s) {
    mdb_txn_abort(first.pin);
    return s;
  }
  d->durable_pin_ = first.pin;
  d->durable_.store(first.txn);
  d->thread_ = std::thread([p = d.get()] { p->loop(); });
  return d;
}

Durability::Durability(MDB_env* env, int record_fd, int wake_fd, const std::string& boot_id)
    : env_(env), record_fd_(record_fd), wake_fd_(wake_fd), boot_id_(boot_id) {
  MDB_stat st;
  mdb_env_stat(env_, &st);
  page_bytes_ = st.ms_psize;
}

Durability::~Durability() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (pending_.pin) mdb_txn_abort(pending_.pin);
  if (durable_pin_) mdb_txn_abort(durable_pin_);
  ::close(record_fd_);
  ::close(wake_fd_);
}

bool Durability::copy_meta(uint64_t txn, unsigned char* out) const {
  // The loop is LMDB's only writer and calls this right after its commit: the meta page of
  // `txn` (slot txn % 2) is in the page cache and nothing overwrites it meanwhile. (LMDB does
  // not expose its map's address; its file descriptor reads the same pages.)
  mdb_filehandle_t fd;
  if (mdb_env_get_fd(env_, &fd) != 0) return false;
  const off_t at = static_cast<off_t>((txn & 1) * page_bytes_ + kPageHeader);
  if (::pread(fd, out, kLmdbMetaBytes, at) != static_cast<ssize_t>(kLmdbMetaBytes)) return false;
  return meta_valid(out) && load<uint64_t>(out + kMetaTxnAt) == txn;
}

void Durability::committed(uint64_t txn) {
  Request r;
  r.txn = txn;
  if (!copy_meta(txn, r.meta)) {
    std::lock_guard lock(mu_);
    if (error_) error_ = Status(Code::kInternal, "LMDB meta page of commit " + std::to_string(txn) + " not found");
    return;
  }
  if (int rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &r.pin)) {
    std::lock_guard lock(mu_);
    if (error_) error_ = lmdb::from_rc(rc, "mdb_txn_begin (durable pin)");
    return;
  }
  MDB_txn* replaced = nullptr;
  {
    std::lock_guard lock(mu_);
    replaced = pending_.pin;
    pending_ = r;
  }
  if (replaced) mdb_txn_abort(replaced);
  cv_.notify_one();
}

void Durability::loop() {
  for (;;) {
    Request r;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return pending_.txn != 0 || stopping_; });
      if (pending_.txn == 0) return;  // stopping, nothing left
      r = pending_;
      pending_ = Request{};
    }
    const auto began = std::chrono::steady_clock::now();
    Status s = sync_and_record(r);
    const auto took = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - began).count());
    size_t bucket = 0;
    while (bucket < proto::kDurationBoundsUs.size() && took > proto::kDurationBoundsUs[bucket]) ++bucket;
    sync_buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
    sync_sum_us_.fetch_add(took, std::memory_order_relaxed);
    MDB_txn* released = nullptr;
    {
      std::lock_guard lock(mu_);
      if (s) {
        released = durable_pin_;
        durable_pin_ = r.pin;
        durable_.store(r.txn, std::memory_order_release);
        syncs_.fetch_add(1, std::memory_order_relaxed);
      } else {
        released = r.pin;
        if (error_) error_ = s;
      }
    }
    if (released) mdb_txn_abort(released);
    const uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof one);
    done_cv_.notify_all();
    if (!s) return;
  }
}

proto::DurationHistogram Durability::sync_time() const {
  proto::DurationHistogram h;
  h.buckets.reserve(sync_buckets_.size());
  for (const auto& b : sync_buckets_) h.buckets.push_back(b.load(std::memory_order_relaxed));
  h.sum_us = sync_sum_us_.load(std::memory_order_relaxed);
  return h;
}

Status Durability::sync_and_record(Request& r) {
  if (int rc = mdb_env_sync(env_, 1)) return lmdb::from_rc(rc, "mdb_env_sync");
  return write_record(r.txn, r.meta);
}

Status Durability::write_record(uint64_t txn, const unsigned char* meta) {
  Record rec;
  rec.txn = txn;
  rec.boot_id = boot_id_;
  std::memcpy(rec.meta, meta, kLmdbMetaBytes);
  unsigned char buf[kSlotBytes];
  encode_slot(rec, buf);
  const off_t at = static_cast<off_t>(record_writes_ % 2) * kSlotStride;
  if (!full_pwrite(record_fd_, buf, kSlotBytes, at)) return errno_status("write durable record");
  if (::fdatasync(record_fd_) != 0) return errno_status("fdatasync durable record");
  ++record_writes_;
  return Status::ok();
}

void Durability::drain() {
  uint64_t n;
  while (::read(wake_fd_, &n, sizeof n) > 0) {
  }
}

Status Durability::error() const {
  std::lock_guard lock(mu_);
  return error_;
}

bool Durability::wait(uint64_t txn, int timeout_ms) {
  std::unique_lock lock(mu_);
  return done_cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                           [&] { return durable_.load() >= txn || !error_; });
}

}  // namespace zb::router
