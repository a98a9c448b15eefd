#include "aws_process.hpp"

#include <fcntl.h>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <simdjson.h>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <thread>

#include "../stop_wait.hpp"
#include "../text.hpp"
#include "sluice/json.hpp"

extern char** environ;

namespace sluice::fetch {
namespace {

// RFC 3339 as the AWS tools write Expiration: 2026-12-06T12:00:00Z, with a fraction of a second or
// an offset (+01:00) at times.
std::optional<std::chrono::system_clock::time_point> rfc3339(std::string_view s) {
  const auto number = [&s](std::size_t at, std::size_t length, int& out) {
    if (at + length > s.size()) return false;
    const char* first = s.data() + at;
    auto [end, ec] = std::from_chars(first, first + length, out);
    return ec == std::errc() && end == first + length;
  };
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  if (s.size() < 20 || !number(0, 4, y) || s[4] != '-' || !number(5, 2, mo) || s[7] != '-' || !number(8, 2, d) ||
      (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !number(11, 2, h) || s[13] != ':' || !number(14, 2, mi) ||
      s[16] != ':' || !number(17, 2, sec)) {
    return std::nullopt;
  }
  const std::chrono::year_month_day date{std::chrono::year(y), std::chrono::month(static_cast<unsigned>(mo)),
                                         std::chrono::day(static_cast<unsigned>(d))};
  if (!date.ok() || h > 23 || mi > 59 || sec > 60) return std::nullopt;
  std::size_t at = 19;
  if (at < s.size() && s[at] == '.') {  // a fraction: not needed to the second
    ++at;
    while (at < s.size() && s[at] >= '0' && s[at] <= '9') ++at;
  }
  std::chrono::minutes offset{0};
  if (at < s.size() && (s[at] == 'Z' || s[at] == 'z')) {
    ++at;
  } else if (at < s.size() && (s[at] == '+' || s[at] == '-')) {
    int oh = 0, om = 0;
    if (!number(at + 1, 2, oh) || at + 3 >= s.size() || s[at + 3] != ':' || !number(at + 4, 2, om)) return std::nullopt;
    offset = std::chrono::hours(oh) + std::chrono::minutes(om);
    if (s[at] == '-') offset = -offset;
    at += 6;
  } else {
    return std::nullopt;
  }
  if (at != s.size()) return std::nullopt;
  return std::chrono::sys_days(date) + std::chrono::hours(h) + std::chrono::minutes(mi) + std::chrono::seconds(sec) -
         offset;
}

// The last line of what a command said on standard error, for its failure's message.
std::string last_words(std::string said) {
  while (!said.empty() && std::isspace(static_cast<unsigned char>(said.back()))) said.pop_back();
  if (const auto nl = said.rfind('\n'); nl != std::string::npos) said.erase(0, nl + 1);
  if (said.size() > 300) said = said.substr(0, 300) + "...";
  return said;
}

}  // namespace

namespace {

// The keys in `object`, its session token under `token_field`; nullopt and `error` (`who` what gave
// them: "it printed", "the answer has") when they are not there.
std::optional<ProcessCredentials> keys_of(simdjson::dom::object object, const char* token_field, std::string_view who,
                                          std::string& error) {
  ProcessCredentials out;
  std::string_view key_id, secret, token, expires;
  if (object["AccessKeyId"].get(key_id) || key_id.empty() || object["SecretAccessKey"].get(secret) || secret.empty()) {
    error = fmt::format("{} no AccessKeyId and SecretAccessKey", who);
    return std::nullopt;
  }
  out.key_id = key_id;
  out.secret = secret;
  if (!object[token_field].get(token)) out.session_token = token;
  if (!object["Expiration"].get(expires)) {
    out.expires = rfc3339(expires);
    if (!out.expires) {
      error = fmt::format("its Expiration '{}' is not an RFC 3339 time (2026-12-06T12:00:00Z)", expires.substr(0, 100));
      return std::nullopt;
    }
  }
  return out;
}

// Who gave the keys: a credential_process ("Version": 1, "SessionToken"), a container's endpoint
// ("Token"), an instance's metadata service ("Token", and "Code": "Success" when it says one).
enum class Answer { process, container, instance };

// The keys in `json`, as `answer` gives them.
std::optional<ProcessCredentials> parse_keys(std::string_view json, Answer answer, std::string& error) {
  const bool process = answer == Answer::process;
  simdjson::dom::parser parser;
  simdjson::dom::object object;
  const simdjson::padded_string text(json);
  if (parser.parse(text).get_object().get(object)) {
    error = process ? "it did not print a JSON object" : "the answer is not a JSON object";
    return std::nullopt;
  }
  std::int64_t version = 0;
  if (process && (object["Version"].get(version) || version != 1)) {
    error = "it printed no \"Version\": 1 (the only version of the credential_process output there is)";
    return std::nullopt;
  }
  std::string_view code;
  if (answer == Answer::instance && !object["Code"].get(code) && code != "Success") {
    error = fmt::format("the answer's Code is '{}', not 'Success'", code.substr(0, 100));
    return std::nullopt;
  }
  return keys_of(object, process ? "SessionToken" : "Token", process ? "it printed" : "the answer has", error);
}

}  // namespace

std::optional<std::chrono::system_clock::time_point> parse_rfc3339(std::string_view text) {
  return rfc3339(text);
}

std::optional<SsoToken> parse_sso_token(std::string_view json, std::string& error) {
  simdjson::dom::parser parser;
  simdjson::dom::object object;
  const simdjson::padded_string text(json);
  if (parser.parse(text).get_object().get(object)) {
    error = "it is not a JSON object";
    return std::nullopt;
  }
  std::string_view token, expires;
  if (object["accessToken"].get(token) || token.empty()) {
    error = "it has no accessToken";
    return std::nullopt;
  }
  if (object["expiresAt"].get(expires)) {
    error = "it has no expiresAt";
    return std::nullopt;
  }
  // A time of the cache: RFC 3339, or with "UTC" for "Z", as older versions of the AWS CLI wrote it.
  const auto cached_time = [](std::string_view written) {
    std::string at(written);
    if (at.ends_with("UTC")) at.replace(at.size() - 3, 3, "Z");
    return rfc3339(at);
  };
  const auto when = cached_time(expires);
  if (!when) {
    error = fmt::format("its expiresAt '{}' is not an RFC 3339 time (2026-12-06T12:00:00Z)", expires.substr(0, 100));
    return std::nullopt;
  }
  SsoToken out{std::string(token), *when, {}, {}, {}, std::nullopt};
  std::string_view value;
  for (const auto& [name, into] : {std::pair<const char*, std::string*>{"refreshToken", &out.refresh_token},
                                   {"clientId", &out.client_id},
                                   {"clientSecret", &out.client_secret}}) {
    if (!object[name].get(value)) *into = value;
  }
  // (Without a valid registrationExpiresAt the login is not renewed, as the AWS CLI does not.)
  if (!object["registrationExpiresAt"].get(value)) out.registration_expires = cached_time(value);
  return out;
}

std::string sso_renewal_request(const SsoToken& login) {
  std::string body = R"({"grantType":"refresh_token","clientId":)";
  append_json_string(body, login.client_id);
  body += R"(,"clientSecret":)";
  append_json_string(body, login.client_secret);
  body += R"(,"refreshToken":)";
  append_json_string(body, login.refresh_token);
  body += '}';
  return body;
}

std::optional<SsoToken> parse_sso_renewal(std::string_view json, const SsoToken& login,
                                          std::chrono::system_clock::time_point now, std::string& error) {
  simdjson::dom::parser parser;
  simdjson::dom::object object;
  const simdjson::padded_string text(json);
  if (parser.parse(text).get_object().get(object)) {
    error = "the answer is not a JSON object";
    return std::nullopt;
  }
  std::string_view token, refresh;
  std::int64_t seconds = 0;
  if (object["accessToken"].get(token) || token.empty()) {
    error = "the answer has no accessToken";
    return std::nullopt;
  }
  if (object["expiresIn"].get(seconds) || seconds <= 0 || seconds > 366 * 86400) {
    error = "the answer has no expiresIn (a number of seconds)";
    return std::nullopt;
  }
  SsoToken out = login;
  out.token = token;
  out.expires = std::chrono::floor<std::chrono::seconds>(now) + std::chrono::seconds(seconds);
  if (!object["refreshToken"].get(refresh) && !refresh.empty()) out.refresh_token = refresh;
  return out;
}

std::string sso_cache_json(const SsoToken& login, std::string_view start_url, std::string_view region) {
  const auto time = [](std::chrono::system_clock::time_point at) {
    return fmt::format("\"{:%Y-%m-%dT%H:%M:%S}Z\"", std::chrono::floor<std::chrono::seconds>(at));
  };
  std::string out = R"({"startUrl": )";
  append_json_string(out, start_url);
  out += R"(, "region": )";
  append_json_string(out, region);
  out += R"(, "accessToken": )";
  append_json_string(out, login.token);
  out += R"(, "expiresAt": )" + time(login.expires);
  out += R"(, "clientId": )";
  append_json_string(out, login.client_id);
  out += R"(, "clientSecret": )";
  append_json_string(out, login.client_secret);
  if (login.registration_expires) out += R"(, "registrationExpiresAt": )" + time(*login.registration_expires);
  out += R"(, "refreshToken": )";
  append_json_string(out, login.refresh_token);
  out += "}\n";
  return out;
}

std::optional<ProcessCredentials> parse_sso_credentials(std::string_view json, std::string& error) {
  simdjson::dom::parser parser;
  simdjson::dom::object object;
  const simdjson::padded_string text(json);
  std::string_view key_id, secret, token;
  std::int64_t expiration = 0;
  if (parser.parse(text).get_object().get(object) || object["roleCredentials"].get_object().get(object)) {
    error = "the answer has no roleCredentials object";
    return std::nullopt;
  }
  if (object["accessKeyId"].get(key_id) || key_id.empty() || object["secretAccessKey"].get(secret) || secret.empty()) {
    error = "the answer has no accessKeyId and secretAccessKey";
    return std::nullopt;
  }
  ProcessCredentials out{std::string(key_id), std::string(secret), "", std::nullopt};
  if (!object["sessionToken"].get(token)) out.session_token = token;
  if (!object["expiration"].get(expiration)) {
    out.expires = std::chrono::system_clock::time_point(std::chrono::milliseconds(expiration));
  }
  return out;
}

std::string sso_error(std::string_view json) {
  simdjson::dom::parser parser;
  simdjson::dom::object object;
  const simdjson::padded_string text(json);
  std::string_view message;
  if (parser.parse(text).get_object().get(object) || object["message"].get(message)) return "";
  return std::string(message.substr(0, 300));
}

std::optional<ProcessCredentials> parse_process_credentials(std::string_view json, std::string& error) {
  return parse_keys(json, Answer::process, error);
}

std::optional<ProcessCredentials> parse_container_credentials(std::string_view json, std::string& error) {
  return parse_keys(json, Answer::container, error);
}

namespace {

// STS's XML (its namespace aside): the first element named `name` at or under `from`, depth first.
xmlNode* element(xmlNode* from, std::string_view name) {
  for (xmlNode* n = from; n; n = n->next) {
    if (n->type != XML_ELEMENT_NODE) continue;
    if (name == reinterpret_cast<const char*>(n->name)) return n;
    if (xmlNode* inside = element(n->children, name)) return inside;
  }
  return nullptr;
}

std::string text_of(xmlNode* n) {
  if (!n) return "";
  xmlChar* content = xmlNodeGetContent(n);
  std::string text(nodes::trim(content ? reinterpret_cast<const char*>(content) : ""));
  xmlFree(content);
  return text;
}

// The document of an STS answer, freed when it goes; no network, no entities expanded.
struct XmlAnswer {
  explicit XmlAnswer(std::string_view xml)
      : doc(xmlReadMemory(xml.data(), static_cast<int>(std::min<std::size_t>(xml.size(), 1 << 20)), nullptr, nullptr,
                          XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING)) {}
  ~XmlAnswer() { xmlFreeDoc(doc); }
  XmlAnswer(const XmlAnswer&) = delete;
  XmlAnswer& operator=(const XmlAnswer&) = delete;
  xmlNode* root() const { return doc ? xmlDocGetRootElement(doc) : nullptr; }
  xmlDoc* doc;
};

}  // namespace

std::string sts_error(std::string_view xml) {
  const XmlAnswer answer(xml);
  xmlNode* error = element(answer.root(), "Error");
  if (!error) return "";
  const std::string code = text_of(element(error->children, "Code")),
                    message = text_of(element(error->children, "Message"));
  std::string said = message.empty() ? code : code.empty() ? message : code + ": " + message;
  return said.size() > 300 ? said.substr(0, 300) + "..." : said;
}

std::optional<ProcessCredentials> parse_sts_credentials(std::string_view xml, std::string& error) {
  const XmlAnswer answer(xml);
  if (!answer.root()) {
    error = "the answer is not XML";
    return std::nullopt;
  }
  xmlNode* credentials = element(answer.root(), "Credentials");
  ProcessCredentials out;
  if (credentials) {
    out.key_id = text_of(element(credentials->children, "AccessKeyId"));
    out.secret = text_of(element(credentials->children, "SecretAccessKey"));
    out.session_token = text_of(element(credentials->children, "SessionToken"));
  }
  if (out.key_id.empty() || out.secret.empty()) {
    error = "the answer has no Credentials with an AccessKeyId and a SecretAccessKey";
    return std::nullopt;
  }
  if (const std::string expires = text_of(element(credentials->children, "Expiration")); !expires.empty()) {
    out.expires = rfc3339(expires);
    if (!out.expires) {
      error = fmt::format("its Expiration '{}' is not an RFC 3339 time (2026-12-06T12:00:00Z)", expires.substr(0, 100));
      return std::nullopt;
    }
  }
  return out;
}

std::optional<ProcessCredentials> parse_instance_credentials(std::string_view json, std::string& error) {
  return parse_keys(json, Answer::instance, error);
}

std::optional<ProcessCredentials> run_credential_process(const std::string& command, std::stop_token stop,
                                                         std::string& error) {
  constexpr std::size_t kMaxOutput = 64 << 10;
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0) {
    error = fmt::format("cannot run it: {}", std::strerror(errno));
    return std::nullopt;
  }
  if (::pipe2(err, O_CLOEXEC) != 0) {
    error = fmt::format("cannot run it: {}", std::strerror(errno));
    ::close(out[0]);
    ::close(out[1]);
    return std::nullopt;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err[1], STDERR_FILENO);
  // sluice blocks the stop signals in every thread and ignores SIGPIPE and SIGXFSZ; the command
  // starts as a shell would start it.
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  sigaddset(&defaults, SIGXFSZ);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setsigdefault(&attributes, &defaults);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::string shell = "/bin/sh", dash_c = "-c", text = command;
  char* argv[] = {shell.data(), dash_c.data(), text.data(), nullptr};
  pid_t pid = 0;
  const int spawned = ::posix_spawn(&pid, "/bin/sh", &actions, &attributes, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  ::close(out[1]);
  ::close(err[1]);
  if (spawned != 0) {
    ::close(out[0]);
    ::close(err[0]);
    error = fmt::format("cannot run it: {}", std::strerror(spawned));
    return std::nullopt;
  }
  std::string printed, said;
  bool too_long = false, stopped = false, exited = false;
  int status = 0;
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  while (fds[0].fd >= 0 || fds[1].fd >= 0) {
    if (stop.stop_requested()) {
      stopped = true;
      break;
    }
    // A command that leaves a child of its own holding the pipes (an agent it starts) has ended
    // when it exits: what it printed is read, not waited for.
    if (!exited) {
      const pid_t ended = ::waitpid(pid, &status, WNOHANG);
      exited = ended == pid || (ended < 0 && errno == ECHILD);
    }
    const int ready = ::poll(fds, 2, exited ? 0 : 100);
    if (ready < 0 && errno != EINTR) break;
    if (ready == 0 && exited) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char chunk[4096];
      const ssize_t n = ::read(fds[i].fd, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        continue;
      }
      std::string& into = i == 0 ? printed : said;
      if (into.size() < kMaxOutput) into.append(chunk, static_cast<std::size_t>(n));
      if (i == 0 && printed.size() >= kMaxOutput) too_long = true;
    }
    if (too_long) break;
  }
  for (auto& f : fds) {
    if (f.fd >= 0) ::close(f.fd);
  }
  // A command that closed its pipes may still run: waited for in 20 ms steps, so that a stop
  // reaches it. One given up on (a stop, too much output) gets SIGTERM, and SIGKILL a second later.
  std::optional<std::chrono::steady_clock::time_point> termed;
  while (!exited) {
    if (!stopped && !too_long && stop.stop_requested()) stopped = true;
    if ((stopped || too_long) && !termed) {
      ::kill(pid, SIGTERM);
      termed = std::chrono::steady_clock::now();
    } else if (termed && std::chrono::steady_clock::now() - *termed > std::chrono::seconds(1)) {
      ::kill(pid, SIGKILL);
    }
    // ECHILD: reaped by the system already (a parent that left SIGCHLD ignored); its status unknown.
    const pid_t ended = ::waitpid(pid, &status, WNOHANG);
    exited = ended == pid || (ended < 0 && errno == ECHILD);
    if (exited) break;
    if (termed) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    } else {
      nodes::sleep_for_stopped(stop, std::chrono::milliseconds(20));
    }
  }
  // Ctrl-C at a terminal reaches the command too (it shares sluice's process group): it dies of the
  // signal a moment before sluice's own watcher asks the run to stop. That is the stop, not a failure.
  if (!stopped && WIFSIGNALED(status) &&
      (WTERMSIG(status) == SIGINT || WTERMSIG(status) == SIGTERM || WTERMSIG(status) == SIGHUP)) {
    stopped = nodes::sleep_for_stopped(stop, std::chrono::milliseconds(500));
  }
  if (stopped) {
    error = "stopped";
    return std::nullopt;
  }
  if (too_long) {
    error = fmt::format("it printed more than {} KiB", kMaxOutput >> 10);
    return std::nullopt;
  }
  const std::string words = last_words(said);
  if (WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0)) {
    error = WIFSIGNALED(status) ? fmt::format("it was killed by signal {}", WTERMSIG(status))
                                : fmt::format("it failed with exit status {}", WEXITSTATUS(status));
    if (!words.empty()) error += ": " + words;
    return std::nullopt;
  }
  return parse_process_credentials(printed, error);
}

std::chrono::system_clock::time_point refresh_time(std::chrono::system_clock::time_point expires,
                                                   std::chrono::system_clock::time_point now) {
  const auto left = expires - now;
  const auto at = left > std::chrono::minutes(20) ? expires - std::chrono::minutes(10) : now + left / 2;
  return std::max(at, now + std::chrono::seconds(1));
}

}  // namespace sluice::fetch
