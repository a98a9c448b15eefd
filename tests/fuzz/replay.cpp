// The fuzz targets without libFuzzer: runs each input file given (or each file under a folder given)
// through LLVMFuzzerTestOneInput, then `--mutations N` variants of each, made by a seeded generator
// (bytes flipped, inserted, removed, repeated, spliced from another input, interesting values), so
// that the test suite covers a little more than the corpus on every run, reproducibly.
//
//   fuzz_replay_<target> [--mutations N] [--seed S] [--max-len BYTES] FILE_OR_DIR...
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);
// AddressSanitizer's, when the build has it: called before a sanitizer ends the process.
extern "C" void __sanitizer_set_death_callback(void (*callback)()) __attribute__((weak));

namespace {

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The input being run, written to kFinding when the process dies on it (a failed check, a crash, a
// sanitizer's report), so that it can be rerun alone and added to the corpus.
const std::string* current = nullptr;
char finding_path[64];

void save_finding() {
  if (current == nullptr) return;
  const int fd = ::open(finding_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return;
  std::size_t done = 0;
  while (done < current->size()) {
    const ssize_t n = ::write(fd, current->data() + done, current->size() - done);
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
  constexpr char kSaid[] = "fuzz replay: the input is saved as ";
  (void)!::write(2, kSaid, sizeof kSaid - 1);
  (void)!::write(2, finding_path, std::strlen(finding_path));
  (void)!::write(2, "\n", 1);
  current = nullptr;
}

void on_signal(int sig) {
  save_finding();
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

void run(const std::string& input) {
  current = &input;
  LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(input.data()), input.size());
  current = nullptr;
}

const char* const kTokens[] = {"\n",       "\r\n",
                               "\"",       "'",
                               ":",        "- ",
                               "{",        "}",
                               "[",        "]",
                               "${",       "{url}",
                               "->",       "<",
                               ">",        "</",
                               "&amp;",    "&#",
                               "%",        "%00",
                               "%2F",      "..",
                               "/",        "\\",
                               "?",        "#",
                               "=",        "&",
                               ";",        ",",
                               "\t",       "\xEF\xBB\xBF",
                               "\xC3\xA9", "\xFF",
                               "\x1F\x8B", "0",
                               "-1",       "9999999999999999999",
                               "1e999",    "NaN",
                               "null",     "*",
                               "$",        "\\u0000"};

std::string mutate(std::string s, const std::vector<std::string>& inputs, std::mt19937_64& rng, std::size_t max_len) {
  auto pick = [&](std::size_t n) { return n == 0 ? 0 : static_cast<std::size_t>(rng() % n); };
  const int steps = 1 + static_cast<int>(rng() % 4);
  for (int i = 0; i < steps; ++i) {
    switch (rng() % 7) {
      case 0:  // flip a bit
        if (!s.empty()) s[pick(s.size())] ^= static_cast<char>(1 << (rng() % 8));
        break;
      case 1:  // a random byte
        s.insert(s.begin() + static_cast<std::ptrdiff_t>(pick(s.size() + 1)), static_cast<char>(rng()));
        break;
      case 2: {  // remove a run
        if (s.empty()) break;
        const std::size_t at = pick(s.size());
        s.erase(at, 1 + pick(std::min<std::size_t>(s.size() - at, 64)));
        break;
      }
      case 3: {  // repeat a run
        if (s.empty()) break;
        const std::size_t at = pick(s.size());
        const std::string run = s.substr(at, 1 + pick(64));
        const int times = 1 + static_cast<int>(rng() % 64);
        std::string rep;
        for (int t = 0; t < times; ++t) rep += run;
        s.insert(at, rep);
        break;
      }
      case 4: {  // splice a piece of another input
        const std::string& other = inputs[pick(inputs.size())];
        if (other.empty()) break;
        const std::size_t from = pick(other.size());
        s.insert(pick(s.size() + 1), other.substr(from, 1 + pick(256)));
        break;
      }
      case 5: {  // a token
        const std::string token = kTokens[pick(std::size(kTokens))];
        s.insert(pick(s.size() + 1), token);
        break;
      }
      default:  // cut
        s.resize(pick(s.size() + 1));
        break;
    }
  }
  if (s.size() > max_len) s.resize(max_len);
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  long mutations = 0;
  std::uint64_t seed = 1;
  std::size_t max_len = 64 * 1024;
  std::vector<std::filesystem::path> files;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--mutations" && i + 1 < argc) {
      mutations = std::strtol(argv[++i], nullptr, 10);
    } else if (arg == "--seed" && i + 1 < argc) {
      seed = std::strtoull(argv[++i], nullptr, 10);
    } else if (arg == "--max-len" && i + 1 < argc) {
      max_len = std::strtoull(argv[++i], nullptr, 10);
    } else if (std::filesystem::is_directory(arg)) {
      for (const auto& e : std::filesystem::recursive_directory_iterator(arg)) {
        if (e.is_regular_file()) files.push_back(e.path());
      }
    } else {
      files.emplace_back(arg);
    }
  }
  std::sort(files.begin(), files.end());
  std::snprintf(finding_path, sizeof finding_path, "/tmp/sluice-fuzz-finding-%d", static_cast<int>(::getpid()));
  for (int sig : {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL}) std::signal(sig, on_signal);
  if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(save_finding);
  std::vector<std::string> inputs;
  for (const auto& f : files) {
    if (!std::filesystem::is_regular_file(f)) {
      std::fprintf(stderr, "fuzz replay: no file '%s'\n", f.c_str());
      return 2;
    }
    inputs.push_back(read_file(f));
  }
  if (inputs.empty()) {
    std::fprintf(stderr, "fuzz replay: no inputs\n");
    return 2;
  }
  for (const auto& input : inputs) run(input);
  std::mt19937_64 rng(seed);
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    for (long m = 0; m < mutations; ++m) run(mutate(inputs[i], inputs, rng, max_len));
  }
  std::printf("fuzz replay: %zu inputs, %ld mutations each, seed %llu: no finding\n", inputs.size(), mutations,
              static_cast<unsigned long long>(seed));
  return 0;
}
