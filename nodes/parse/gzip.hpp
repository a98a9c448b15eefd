// Bodies that are gzip files rather than documents: a sitemap.xml.gz, served as application/gzip
// (or untyped) with no Content-Encoding, so that libcurl hands over the compressed bytes.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::parse {

// The most a gzipped body is unzipped to: a sitemap may hold 50 MB (sitemaps.org), and a gzip bomb
// must not take the machine's memory.
inline constexpr std::size_t kMaxUnzipped = 64 << 20;

// Whether `body` starts with gzip's magic bytes (1f 8b): no text document does.
bool is_gzip(std::string_view body);

// The content of the gzip file `body` (several members are joined, as gunzip does). Nullopt, with
// `error` set, when it is not a whole, valid gzip file, or unzips to more than `max_size` bytes.
std::optional<std::string> gunzip(std::string_view body, std::string& error, std::size_t max_size = kMaxUnzipped);

// A fetched body that is a gzip file (a sitemap.xml.gz), unzipped for a parse node; nullopt when
// it is no gzip file, or, with `error` set (naming `page_url`), one that cannot be unzipped.
std::optional<std::string> unzip_body(std::string_view body, std::string_view page_url, std::string& error);

}  // namespace sluice::parse
