// AWS Signature Version 4: the Authorization header of a request signed with aws_sigv4's keys,
// and the hashes and dates it is made of.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/types.h>

#include "options.hpp"

namespace sluice::fetch {

// `url` in AWS Signature Version 4's encoding, as it is sent and signed: each segment of its path
// percent-decoded and encoded again with only A-Z a-z 0-9 - . _ ~ left (as the AWS SDKs send a path;
// "." and ".." segments resolved), its query in the canonical form (each name and value so encoded,
// sorted by name, then value; a name without '=' gets one), its fragment left out.
std::string aws_canonical_url(std::string_view url);
// The value of the Host header a request to `url` sends: its host, and its port unless the scheme's
// own (libcurl's rule); without user and password.
std::string aws_host(std::string_view url);
// AWS Signature Version 4 (canonical request, string to sign, signing key): the value of the
// Authorization header of a request with `method` to `url` (aws_canonical_url()'s, as sent), signing
// the `headers` ("Name: value" lines, Host and X-Amz-Date among them; lines without a value are
// not signed) and the body's SHA-256 in hex, `payload_hash`, at `amz_date` (YYYYMMDDTHHMMSSZ, UTC).
// The canonical URI is the path as sent for S3 (a service named s3...), and for every other
// service that path encoded once more, without empty and dot segments, as AWS's SDKs sign it
// (libcurl 7.88 signs every path as sent, so a Lambda ARN's or Bedrock model id's ':' would not
// verify).
std::string aws_authorization(const FetchOptions::Aws& aws, std::string_view method, std::string_view url,
                              const std::vector<std::string>& headers, std::string_view payload_hash,
                              std::string_view amz_date);
// The lower-case hex SHA-256 of `bytes` (x-amz-content-sha256).
std::string sha256_hex(std::string_view bytes);
// X-Amz-Date's form of `now`: YYYYMMDDTHHMMSSZ, UTC.
std::string amz_date(std::chrono::system_clock::time_point now);
// The lower-case hex text of the hash `digest` holds (finished here).
std::string hex_digest(EVP_MD_CTX* digest);

}  // namespace sluice::fetch
