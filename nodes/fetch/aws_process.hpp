// aws_sigv4's credential_process: the AWS CLI's and SDKs' way to get credentials from a command of
// the user's (aws-vault, granted, `aws configure export-credentials`, a company's own tool), which
// prints them as JSON on its standard output.
#pragma once

#include <chrono>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>

namespace sluice::fetch {

// What a credential_process printed: {"Version": 1, "AccessKeyId": ..., "SecretAccessKey": ...,
// "SessionToken": ..., "Expiration": "2026-12-06T12:00:00Z"} (the last two optional).
struct ProcessCredentials {
  std::string key_id, secret, session_token;
  std::optional<std::chrono::system_clock::time_point> expires;  // none: they do not expire
};

// Reads the JSON a credential_process printed; nullopt and `error` when it is not that.
std::optional<ProcessCredentials> parse_process_credentials(std::string_view json, std::string& error);

// Reads a container credentials endpoint's answer ({"AccessKeyId": ..., "SecretAccessKey": ...,
// "Token": ..., "Expiration": ...}, as ECS and EKS Pod Identity give it); nullopt and `error` when it
// is not that.
std::optional<ProcessCredentials> parse_container_credentials(std::string_view json, std::string& error);

// The same, as an EC2 instance's metadata service gives a role's keys: also refused when its
// "Code" is not "Success".
std::optional<ProcessCredentials> parse_instance_credentials(std::string_view json, std::string& error);

// STS's answer to AssumeRoleWithWebIdentity (XML: its Credentials' AccessKeyId, SecretAccessKey,
// SessionToken and Expiration); nullopt and `error` when it is not that.
std::optional<ProcessCredentials> parse_sts_credentials(std::string_view xml, std::string& error);
// What an STS error answer says ("InvalidIdentityToken: Token expired"), "" when it is none.
std::string sts_error(std::string_view xml);

// The token an SSO login left in its cache (`aws sso login`: ~/.aws/sso/cache/*.json,
// {"accessToken": ..., "expiresAt": "2026-12-06T12:00:00Z", ...}); nullopt and `error` when the JSON
// is not that. A login of an sso-session also leaves what renews its token (SSO OIDC's CreateToken
// with grant type refresh_token): "refreshToken", and the client registration's "clientId",
// "clientSecret" and "registrationExpiresAt".
struct SsoToken {
  std::string token;
  std::chrono::system_clock::time_point expires;
  std::string refresh_token, client_id, client_secret;
  std::optional<std::chrono::system_clock::time_point> registration_expires;
  // Whether it can be renewed at `now`: all four there, and the registration not expired.
  bool renewable(std::chrono::system_clock::time_point now) const {
    return !refresh_token.empty() && !client_id.empty() && !client_secret.empty() && registration_expires &&
           *registration_expires > now;
  }
};
std::optional<SsoToken> parse_sso_token(std::string_view json, std::string& error);
// The JSON body of SSO OIDC's CreateToken that renews `login` with its refresh token.
std::string sso_renewal_request(const SsoToken& login);
// SSO OIDC's answer to it ({"accessToken": ..., "expiresIn": <seconds>, "refreshToken": ...}, the
// last one only when it issues a new one) made into the renewed login, at `now`: the new token,
// its expiry, the new refresh token or the old one, the same client registration. nullopt and
// `error` when the answer is not that.
std::optional<SsoToken> parse_sso_renewal(std::string_view json, const SsoToken& login,
                                          std::chrono::system_clock::time_point now, std::string& error);
// The cache file's JSON for `login` of the sso-session with `start_url` and `region`, with the
// fields the AWS CLI writes when it renews a login, so that it and the SDKs read it as their own.
std::string sso_cache_json(const SsoToken& login, std::string_view start_url, std::string_view region);
// IAM Identity Center's answer to GetRoleCredentials ({"roleCredentials": {"accessKeyId": ...,
// "secretAccessKey": ..., "sessionToken": ..., "expiration": <Unix milliseconds>}}); nullopt and
// `error` when it is not that.
std::optional<ProcessCredentials> parse_sso_credentials(std::string_view json, std::string& error);
// What an SSO error answer says (its "message"), "" when it is none.
std::string sso_error(std::string_view json);

// Runs `command` with /bin/sh -c (standard input the process's, signals as a fresh process has
// them), reads its standard output and error, and parses what it printed. Blocks until the
// command ends, or until `stop` is requested (the command is then killed: nullopt, error
// "stopped"). nullopt and `error` (with the end of what the command said on standard error) when
// it fails. Any thread; no TBB worker or I/O thread should call it.
std::optional<ProcessCredentials> run_credential_process(const std::string& command, std::stop_token stop,
                                                         std::string& error);

// An RFC 3339 time as AWS and Google write them (2026-12-06T12:00:00Z, with a fraction of a second
// or an offset at times); nullopt when it is not one.
std::optional<std::chrono::system_clock::time_point> parse_rfc3339(std::string_view text);

// When credentials that expire at `expires` are asked for again: 10 minutes before (as the AWS SDKs
// do), or half way there for credentials that last less than 20 minutes; not before `now` + 1 s.
std::chrono::system_clock::time_point refresh_time(std::chrono::system_clock::time_point expires,
                                                   std::chrono::system_clock::time_point now);

}  // namespace sluice::fetch
