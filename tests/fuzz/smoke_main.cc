// A fuzz target as a plain program, for CTest in the normal build: runs the target on every
// file of the corpus folders it is given, then on deterministic mutations of each (bit flips,
// interesting bytes, cuts, repeats, insertions, splices with another file), so the suite checks
// in well under a second that the corpus and its neighbourhood still pass.
//
//   fuzz_smoke_<target> [--mutations N] DIR...
#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/fuzz/fuzz.h"

extern "C" __attribute__((weak)) int LLVMFuzzerInitialize(int* argc, char*** argv);

namespace {

// xorshift64*: the same mutations on every run.
struct Rng {
  uint64_t s;
  uint64_t next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545F4914F6CDD1DULL;
  }
  size_t below(size_t n) { return n ? static_cast<size_t>(next() % n) : 0; }
};

std::string mutate(const std::string& in, const std::vector<std::string>& corpus, Rng& rng) {
  static constexpr uint8_t kInteresting[] = {0x00, 0x01, 0x7f, 0x80, 0xff, 0xc0, 0xdc, 0xdd, 0xce, 0xcf, '"', '[', '{', '\n', '=', ':'};
  std::string out = in;
  const int steps = 1 + static_cast<int>(rng.below(4));
  for (int i = 0; i < steps; ++i) {
    const size_t at = rng.below(out.size() + 1);
    switch (rng.below(7)) {
      case 0:
        if (!out.empty()) out[rng.below(out.size())] ^= static_cast<char>(1u << rng.below(8));
        break;
      case 1:
        if (!out.empty()) out[rng.below(out.size())] = static_cast<char>(kInteresting[rng.below(sizeof kInteresting)]);
        break;
      case 2:
        out.erase(at, rng.below(16) + 1);
        break;
      case 3:
        out.insert(at, out.substr(at, rng.below(32) + 1));
        break;
      case 4:
        out.insert(at, 1, static_cast<char>(rng.next()));
        break;
      case 5:
        out.resize(at);
        break;
      case 6: {
        const std::string& other = corpus[rng.below(corpus.size())];
        const size_t from = rng.below(other.size() + 1);
        out = out.substr(0, at) + other.substr(from, rng.below(64) + 1);
        break;
      }
    }
  }
  return out;
}

int run(const std::string& input) {
  return LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
}

}  // namespace

int main(int argc, char** argv) {
  if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
  size_t mutations = 64;
  std::vector<std::filesystem::path> dirs;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--mutations") == 0 && i + 1 < argc) mutations = std::stoul(argv[++i]);
    else dirs.emplace_back(argv[i]);
  }
  std::vector<std::filesystem::path> files;
  for (const auto& dir : dirs) {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec))
      if (entry.is_regular_file()) files.push_back(entry.path());
    if (ec) {
      std::cerr << "fuzz smoke: cannot read " << dir << ": " << ec.message() << "\n";
      return 2;
    }
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) {
    std::cerr << "fuzz smoke: no corpus files\n";
    return 2;
  }
  std::vector<std::string> corpus;
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    corpus.push_back(text.str());
  }
  const auto start = std::chrono::steady_clock::now();
  size_t runs = 0;
  for (size_t i = 0; i < corpus.size(); ++i) {
    run(corpus[i]);
    ++runs;
    Rng rng{0x9e3779b97f4a7c15ULL ^ (i + 1)};
    for (size_t m = 0; m < mutations; ++m, ++runs) run(mutate(corpus[i], corpus, rng));
  }
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
  std::cout << "fuzz smoke: " << corpus.size() << " corpus files, " << runs << " inputs, " << ms << " ms\n";
  return 0;
}
