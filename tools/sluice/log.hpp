// How `sluice run` writes to standard error: text for a person (the default), or one JSON object
// per line (--log-format json) for a log collector: every line an event with its time, level and
// message, and its figures as fields of their own.
#pragma once

#include <spdlog/formatter.h>

#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

#include "sluice/diagnostics.hpp"

namespace sluice::cli {

enum class LogFormat { text, json };
void set_log_format(LogFormat format);
bool json_log();

// "2026-12-02T09:31:18Z", or with milliseconds "2026-12-02T09:31:18.123Z".
std::string utc_now(bool milliseconds = false);
// `text` as a JSON string, quoted and escaped.
std::string json_quoted(std::string_view text);

// One JSON line: {"time": ..., "level": ..., "event": ..., "message": ..., FIELDS}. `fields` is
// empty or JSON object members ("\"node\": \"get\", \"count\": 3").
void log_json(std::FILE* out, std::string_view level, std::string_view event, std::string_view message,
              std::string_view fields = "");
// A message of the runner's own: "sluice: LEVEL: message" (level "error" or "warning"; "info"
// prints "sluice: message"), or a JSON line of `event`.
void say(std::FILE* out, std::string_view level, std::string_view event, std::string_view message);
// Pipeline errors, compiler style (file:line:col: error: message), or one JSON line each (event
// invalid, with file, line and column).
void print_diagnostics(std::FILE* out, const Diagnostics& diags);

// spdlog's lines as JSON (event log), for the default logger under --log-format json.
std::unique_ptr<spdlog::formatter> json_formatter();

}  // namespace sluice::cli
