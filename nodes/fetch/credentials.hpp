// The files fetch reads its credentials from (netrc, cookies, AWS's credentials and config
// files, oauth2's keys and tokens) and the checks of certificates and proxies made when a pipeline
// is checked. Each function reads or checks and says what is wrong; none keeps state.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "aws_process.hpp"
#include "options.hpp"

namespace sluice::fetch {

// oauth2's jwt key_file: a Google service account's JSON key (its private key, client_email,
// private_key_id and token_uri) or a PEM file with an RSA private key.
struct JwtKey {
  std::string pem;
  std::string client_email, key_id, token_uri;  // "" for a PEM file
  // jwt.certificate's thumbprints, base64url (RFC 7515 4.1.7-8): x5t its SHA-1, x5t_s256 its SHA-256.
  std::string x5t, x5t_s256;
};

// The most of an answer to oauth2's token request that is read (a token is a few KiB at most).
inline constexpr std::size_t kTokenMax = 64 * 1024;

// A request header's name: an HTTP token (RFC 9110: letters, digits and !#$%&'*+-.^_`|~).
bool is_header_name(std::string_view name);
// A request header's value: no CR, LF or NUL, which would end the header line and start another
// (a field of a scraped record rendered into a header must not add headers of its own).
bool header_value_ok(std::string_view value);

// A proxy URL as records and messages show it: scheme://host:port, without credentials.
std::string proxy_shown(const std::string& url);

// The cookies of a Netscape cookie file (what browser extensions export as cookies.txt, and
// `curl -c` writes): one per line, 7 fields separated by tabs (domain, include subdomains, path,
// secure, expiry, name, value; a "#HttpOnly_" prefix marks an HttpOnly cookie). Blank lines and
// other '#' lines are skipped. Returns nullopt and sets `error` when the file cannot be read, a line
// is not a cookie (naming it), or every cookie in it has expired.
std::optional<std::vector<std::string>> read_cookie_file(const std::string& path, std::string& error);
// A netrc file (as curl, ftp and git read ~/.netrc): `machine NAME login L password P` entries and
// a `default` one (name ""), in the file's order, names in lower case; `account` and `macdef` are
// read over; "quoted tokens" may hold spaces (\" and \\ escaped). nullopt and `error` (with the
// line) when it cannot be read, or a token is out of place or lacks its value, or an entry lacks a
// login or password.
std::optional<std::vector<std::pair<std::string, FetchOptions::Auth>>> read_netrc(const std::string& path,
                                                                                  std::string& error);
// aws_sigv4's shared credentials file (~/.aws/credentials, as the AWS CLI and SDKs read it):
// `aws_access_key_id`, `aws_secret_access_key` and `aws_session_token` of profile `profile` ([name]
// sections of `name = value` lines; '#' and ';' lines are comments, indented lines a nested
// setting's) set in `aws`; a profile without keys whose `credential_process` names a command sets
// `aws.process` instead, for the caller to run. `config`: the file is the AWS config file
// (~/.aws/config), whose sections are [profile NAME] and [default]. false and `error` (with the
// line) when the file cannot be read or is no such file, has no such profile (naming those it has),
// or the profile lacks the key id or secret (saying so when it names an SSO instead). A profile
// with a `role_arn` or SSO settings (given `role`) sets `role` instead of keys, for the caller to
// assume: as the AWS CLI, a role comes before keys. (An [sso-session NAME] section of the config
// file is read as profile "sso-session NAME".)
struct AwsProfileRole {
  std::string arn, source_profile, credential_source, external_id, session_name, duration, mfa_serial,
      web_identity_token_file;
  // IAM Identity Center (SSO): an account's role whose keys the SSO portal gives for a login's token.
  std::string sso_session, sso_start_url, sso_region, sso_account_id, sso_role_name;
  bool sso() const { return !sso_session.empty() || !sso_start_url.empty() || !sso_account_id.empty(); }
};
bool read_aws_credentials(const std::string& path, const std::string& profile, FetchOptions::Aws& aws,
                          std::string& error, bool config = false, AwsProfileRole* role = nullptr);
// The file where `aws sso login` keeps the token of `key` (an sso-session's name, or a legacy
// profile's sso_start_url): `home`/.aws/sso/cache/<SHA-1 of key, hex>.json.
std::string sso_cache_file(const std::string& home, std::string_view key);
// The token and expiry that file holds; nullopt and `error` when it cannot be read or holds none.
std::optional<SsoToken> read_sso_token(const std::string& path, std::string& error);
// The one token the file at `path` holds (`what` it is, for the error when it is none: a folder;
// `holds`, what it should hold, for an empty one), surrounding white space left out; nullopt and
// `error` when it cannot be read or holds none.
std::optional<std::string> read_token_file(const std::string& path, std::string_view what, std::string_view holds,
                                           std::string& error);
// oauth2's client_assertion_file: the assertion it holds (one token, surrounding white space left
// out), or nullopt and `error` when it cannot be read or holds none.
std::optional<std::string> read_client_assertion(const std::string& path, std::string& error);
// oauth2's subject_token_file, likewise: the token it holds, to be exchanged.
std::optional<std::string> read_subject_token(const std::string& path, std::string& error);
// oauth2's refresh_token_file: the refresh token it holds (its one line), or nullopt and `error`
// when it cannot be read, holds no token, or it and its folder cannot be written (a new refresh
// token goes there).
std::optional<std::string> read_refresh_token(const std::string& path, std::string& error);
// client_cert and client_key (the same file when "") checked: a PEM certificate, and the private
// key that goes with it, without a passphrase; false and `error` if not.
bool check_client_certificate(const std::string& cert, const std::string& key, std::string& error);
// proxy_auth's check of a proxy URL: "" when it names a user and password for an HTTP(S) proxy (with
// `ntlm`, ASCII ones), else what is wrong, the URL shown without its credentials.
std::string check_proxy_credentials(const std::string& url, bool ntlm);
// oauth2's jwt key_file read, or nullopt and `error` when it cannot be read or holds no RSA private
// key.
std::optional<JwtKey> read_jwt_key(const std::string& path, std::string& error);
// oauth2's jwt certificate: the thumbprints of the PEM certificate in `path` set in `key` (read from
// `key_file`); false and `error` when it cannot be read, holds no certificate, or is not the key's.
bool read_jwt_certificate(JwtKey& key, const std::string& key_file, const std::string& path, std::string& error);
// An RFC 7523 assertion for `o` at `now` (Unix seconds), unique by `nonce`: the JWT
// {header}.{claims}.{RS256 signature}, base64url; "" and `error` if the key cannot sign.
std::string jwt_assertion(const JwtKey& key, const FetchOptions::OAuth2& o, std::int64_t now, std::uint64_t nonce,
                          std::string& error);
// Replaces the content of the file at `path` (a refresh token file, an SSO login's cache) with
// `text`: a new file in its folder, readable by its owner only and synced, then renamed over it, so
// that a crash leaves the old or the new content, whole. False and `error` when it cannot.
bool replace_private_file(const std::string& path, std::string_view text, std::string& error);

// Whether this machine is an EC2 instance, as its firmware says (`sys` is /sys): the DMI vendor
// of a Nitro instance ("Amazon EC2"), or the hypervisor's UUID of a Xen one ("ec2...").
bool on_ec2(const std::string& sys);
// Whether `name` is a name IAM takes for a role or a role's session: letters, digits and +=,.@_-.
bool iam_name(std::string_view name);

}  // namespace sluice::fetch
