#include "log.hpp"

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <ctime>

#include "sluice/json.hpp"

namespace sluice::cli {
namespace {

std::atomic<LogFormat> g_format{LogFormat::text};

std::string format_time(std::chrono::system_clock::time_point at, bool milliseconds) {
  const std::time_t t = std::chrono::system_clock::to_time_t(at);
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::string out = fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                                tm.tm_hour, tm.tm_min, tm.tm_sec);
  if (milliseconds) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(at.time_since_epoch()).count() % 1000;
    out += fmt::format(".{:03}", ms);
  }
  out += 'Z';
  return out;
}

std::string json_line(std::chrono::system_clock::time_point at, std::string_view level, std::string_view event,
                      std::string_view message, std::string_view fields) {
  std::string line = fmt::format(R"({{"time": "{}", "level": "{}", "event": "{}", "message": {})",
                                 format_time(at, true), level, event, json_quoted(message));
  if (!fields.empty()) {
    line += ", ";
    line += fields;
  }
  line += "}\n";
  return line;
}

class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    std::string_view level;
    switch (msg.level) {
      case spdlog::level::trace:
        level = "trace";
        break;
      case spdlog::level::debug:
        level = "debug";
        break;
      case spdlog::level::warn:
        level = "warning";
        break;
      case spdlog::level::err:
      case spdlog::level::critical:
        level = "error";
        break;
      default:
        level = "info";
    }
    const std::string line =
        json_line(msg.time, level, "log", std::string_view(msg.payload.data(), msg.payload.size()), "");
    dest.append(line.data(), line.data() + line.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<JsonFormatter>(); }
};

}  // namespace

void set_log_format(LogFormat format) {
  g_format.store(format);
}
bool json_log() {
  return g_format.load() == LogFormat::json;
}

std::string utc_now(bool milliseconds) {
  return format_time(std::chrono::system_clock::now(), milliseconds);
}

std::string json_quoted(std::string_view text) {
  std::string out;
  append_json_string(out, text);
  return out;
}

void log_json(std::FILE* out, std::string_view level, std::string_view event, std::string_view message,
              std::string_view fields) {
  const std::string line = json_line(std::chrono::system_clock::now(), level, event, message, fields);
  std::fwrite(line.data(), 1, line.size(), out);
  std::fflush(out);
}

void say(std::FILE* out, std::string_view level, std::string_view event, std::string_view message) {
  if (json_log()) return log_json(out, level, event, message);
  if (level == "info") {
    fmt::print(out, "sluice: {}\n", message);
  } else {
    fmt::print(out, "sluice: {}: {}\n", level, message);
  }
}

void print_diagnostics(std::FILE* out, const Diagnostics& diags) {
  if (!json_log()) {
    fmt::print(out, "{}", diags.to_string());
    return;
  }
  for (const auto& d : diags.items()) {
    std::string fields = fmt::format(R"("file": {})", json_quoted(d.where.file));
    if (d.where.known()) fields += fmt::format(R"(, "line": {}, "column": {})", d.where.line, d.where.column);
    log_json(out, "error", "invalid", d.message, fields);
  }
}

std::unique_ptr<spdlog::formatter> json_formatter() {
  return std::make_unique<JsonFormatter>();
}

}  // namespace sluice::cli
