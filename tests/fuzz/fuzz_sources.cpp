// Files a pipeline reads: source.csv (RFC 4180 quoting, typed cells, byte order marks, UTF-16
// refused, gzip), source.list (one item per line, gzip) and source.jsonl (a JSON object per line). The input is the
// file; its first byte also picks the reader. A bad file fails with a NodeError naming its line, never anything else.
#include <unistd.h>

#include <array>
#include <cstdio>
#include <fstream>

#include "fuzz.hpp"

namespace {

// The file the sources read, one per process, removed when the process ends.
struct InputFile {
  std::string path = "/tmp/sluice-fuzz-" + std::to_string(::getpid()) + ".in";
  ~InputFile() { std::remove(path.c_str()); }
};

const std::string& file_path() {
  static const InputFile file;
  return file.path;
}

std::string pipeline_text() {
  return R"(
nodes:
  - id: typed
    type: source.csv
    path: )" +
         file_path() + R"(
    types: {rank: int, price: number}
  - id: tabs
    type: source.csv
    path: )" +
         file_path() + R"(
    delimiter: "\t"
    header: false
    fields: [a, b, c]
  - id: semicolons
    type: source.csv
    path: )" +
         file_path() + R"(
    delimiter: ";"
  - id: list
    type: source.list
    file: )" +
         file_path() + R"(
  - id: jsonl
    type: source.jsonl
    path: )" +
         file_path() + R"(
  - id: out
    type: sink.jsonl
    path: /dev/null
edges:
  - typed -> out
  - tabs -> out
  - semicolons -> out
  - list -> out
  - jsonl -> out
)";
}

constexpr std::array kSources{"typed", "tabs", "semicolons", "list", "jsonl"};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace sluice;
  {
    std::ofstream file(file_path(), std::ios::binary | std::ios::trunc);
    file.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  static const fuzz::Pipeline pipeline = fuzz::load(pipeline_text());
  const std::uint8_t pick = size > 0 ? data[0] : 0;
  try {
    auto node = pipeline.make(kSources[pick % kSources.size()]);
    auto* source = dynamic_cast<SourceNode*>(node.get());
    FUZZ_CHECK(source != nullptr, "not a source");
    std::size_t records = 0;
    Record r;
    while (source->next(r)) {
      ++records;
      // A line gives at most one record (gzip aside: 1032 bytes of text per byte at most).
      FUZZ_CHECK(records <= 1100 * (size + 1), "more records than the file has lines");
      r = Record();
    }
  } catch (const NodeError& e) {
    FUZZ_CHECK(std::string_view(e.what()).size() > 0, "a NodeError without a message");
  }
  return 0;
}
