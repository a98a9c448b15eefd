#include "gzip.hpp"

#include <fmt/format.h>
#include <zlib.h>

#include <algorithm>

namespace sluice::parse {
namespace {

std::string size_text(std::size_t bytes) {
  return bytes % (1 << 20) == 0 ? fmt::format("{} MiB", bytes >> 20) : fmt::format("{} bytes", bytes);
}

}  // namespace

bool is_gzip(std::string_view body) {
  return body.size() >= 2 && static_cast<unsigned char>(body[0]) == 0x1f && static_cast<unsigned char>(body[1]) == 0x8b;
}

std::optional<std::string> gunzip(std::string_view body, std::string& error, std::size_t max_size) {
  z_stream z{};
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) {  // 16: a gzip header and trailer, not zlib's
    error = "cannot start zlib";
    return std::nullopt;
  }
  // One byte more than max_size may be written: a body that fills it is too large.
  const std::size_t limit = max_size + 1;
  std::string out;
  out.resize(std::min<std::size_t>(limit, std::max<std::size_t>(body.size() * 4, 4096)));
  std::size_t produced = 0;
  auto fail = [&](std::string message) -> std::optional<std::string> {
    inflateEnd(&z);
    error = std::move(message);
    return std::nullopt;
  };
  std::size_t consumed = 0;
  while (true) {
    // zlib counts in uInt: feed at most 1 GiB at a time.
    const std::size_t in_chunk = std::min<std::size_t>(body.size() - consumed, 1u << 30);
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(body.data() + consumed));
    z.avail_in = static_cast<uInt>(in_chunk);
    if (produced > max_size) return fail(fmt::format("larger than {} unzipped", size_text(max_size)));
    if (produced == out.size()) out.resize(std::min(limit, out.size() * 2));
    const std::size_t out_chunk = std::min<std::size_t>(out.size() - produced, 1u << 30);
    z.next_out = reinterpret_cast<Bytef*>(out.data() + produced);
    z.avail_out = static_cast<uInt>(out_chunk);
    const int rc = inflate(&z, Z_NO_FLUSH);
    consumed += in_chunk - z.avail_in;
    produced += out_chunk - z.avail_out;
    if (rc == Z_STREAM_END) {
      if (consumed == body.size()) break;
      // Another member follows (gzip files may be concatenated): gunzip reads on.
      if (!is_gzip(body.substr(consumed))) {
        if (body.substr(consumed).find_first_not_of('\0') == std::string_view::npos) break;  // padding
        return fail("data after the end of the gzip file");
      }
      if (inflateReset(&z) != Z_OK) return fail("cannot restart zlib");
      continue;
    }
    if (rc == Z_BUF_ERROR && consumed == body.size() && z.avail_out > 0) {
      return fail("the gzip file is cut off");
    }
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
      return fail(fmt::format("not a valid gzip file ({})", z.msg ? z.msg : "zlib error"));
    }
  }
  inflateEnd(&z);
  if (produced > max_size) {
    error = fmt::format("larger than {} unzipped", size_text(max_size));
    return std::nullopt;
  }
  out.resize(produced);
  return out;
}

std::optional<std::string> unzip_body(std::string_view body, std::string_view page_url, std::string& error) {
  if (!is_gzip(body)) return std::nullopt;
  std::string why;
  auto out = gunzip(body, why);
  if (!out) error = fmt::format("cannot unzip the gzip body of '{}': {}", page_url, why);
  return out;
}

}  // namespace sluice::parse
