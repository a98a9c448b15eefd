// The sluice runner: run, validate, draw and test pipelines; list and describe node types.
#include <fmt/format.h>
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <thread>

#include "expect.hpp"
#include "fixture_server.hpp"
#include "graph.hpp"
#include "log.hpp"
#include "metrics.hpp"
#include "report.hpp"
#include "sluice/pipeline.hpp"
#include "sluice/plugin.hpp"
#include "sluice/registry.hpp"
#include "sluice/run.hpp"
#include "sluice/spec.hpp"
#include "sluice/state.hpp"

namespace {

using namespace sluice;

// Exit codes: 0 success, 1 the pipeline failed, 2 invalid pipeline or usage, 128+signal interrupted.
constexpr int kInvalid = 2;

std::vector<std::pair<std::string, std::string>> parse_overrides(const std::vector<std::string>& sets, bool& ok) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& s : sets) {
    auto eq = s.find('=');
    if (eq == std::string::npos || eq == 0) {
      cli::say(stderr, "error", "usage", fmt::format("--set expects key=value, got '{}'", s));
      ok = false;
      continue;
    }
    out.emplace_back(s.substr(0, eq), s.substr(eq + 1));
  }
  return out;
}

// A command that cannot start for want of something the system refused (a thread): said, exit 1.
struct CannotStart : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Signal handling: SIGINT, SIGTERM and SIGHUP (a closed terminal or ssh session) are blocked in
// every thread and taken by one watcher thread with sigwait, which asks the run to stop (first
// signal graceful, second abort), unless the process started with one ignored (nohup). No
// handler runs. The watcher must exist before the command starts any thread (the settings.serve
// fixture server's, plugins'): a thread created earlier would not block the signals, and the
// kernel would deliver one there, killing the process with nothing committed. A request made
// before the run starts is replayed when it does (StopSignal::attach), so the run stops at once.
// The third request arms a last resort: a process that has still not ended `grace` later (its
// main thread stuck where no stop reaches it, as a sink opening a FIFO that no reader opens)
// ends with _exit(); what its sinks committed is kept.
class SignalWatcher {
 public:
  SignalWatcher(StopSignal& stop, bool announce) : stop_(stop) {
    sigemptyset(&set_);
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
      // A signal the run was started ignoring stays ignored (blocked, sigwait would take it): the
      // SIGHUP of `nohup sluice run ...`, whose run must outlive the terminal, and the SIGINT of a
      // job a script starts in the background. Shells and GNU tools keep them so.
      struct sigaction action {};
      if (::sigaction(sig, nullptr, &action) == 0 && action.sa_handler == SIG_IGN) continue;
      sigaddset(&set_, sig);
    }
    sigaddset(&set_, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set_, nullptr);
    try {
      start(announce);
    } catch (const std::system_error& e) {
      throw CannotStart(thread_refused(e));
    }
  }
  ~SignalWatcher() {
    pthread_kill(thread_.native_handle(), SIGUSR1);
    thread_.join();
  }
  // How long after the third stop request the process may still take before it is ended: at least
  // `grace` (the longest any loaded pipeline's cancelled work and sinks may take).
  void allow(std::chrono::milliseconds grace) {
    grace_ms_.store(std::max(grace_ms_.load(), static_cast<long long>(grace.count())));
  }

 private:
  void start(bool announce) {
    thread_ = std::thread([this, announce] {
      std::optional<std::chrono::steady_clock::time_point> deadline;  // armed by the third request
      while (true) {
        int sig = 0;
        if (deadline) {
          const auto left = std::max<std::chrono::nanoseconds>(*deadline - std::chrono::steady_clock::now(), {});
          const timespec timeout{static_cast<time_t>(left.count() / 1000000000),
                                 static_cast<long>(left.count() % 1000000000)};
          sig = sigtimedwait(&set_, nullptr, &timeout);
          if (sig < 0 && errno == EAGAIN) {
            const std::string message = fmt::format(
                "sluice: exiting: the run has not ended {:.1f} s after the third stop request (a node stuck where no "
                "stop reaches it); what was committed is kept\n",
                static_cast<double>(grace_ms_.load()) / 1000);
            [[maybe_unused]] auto written = ::write(STDERR_FILENO, message.data(), message.size());
            _exit(128 + std::max(1, stop_.signal_number()));
          }
          if (sig < 0) continue;
        } else if (sigwait(&set_, &sig) != 0) {
          continue;
        }
        if (sig == SIGUSR1) return;  // shutdown of the watcher itself
        if (announce) {
          if (stop_.requests() == 0) {
            spdlog::warn("stopping: finishing work in flight (press Ctrl-C again to abort)");
          } else if (stop_.requests() == 1) {
            spdlog::warn("aborting: transfers in flight are cancelled; committed data is kept");
          } else {
            spdlog::warn("exiting: no longer waiting for cancelled work; sinks commit what they received");
          }
        }
        stop_.request(sig);
        if (!deadline && stop_.requests() >= 3) {
          if (grace_ms_.load() == 0) grace_ms_.store(kDefaultGrace.count());  // no pipeline loaded yet
          deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(grace_ms_.load());
        }
      }
    });
  }

  StopSignal& stop_;
  sigset_t set_;
  std::thread thread_;
  // The grace with the default abort_timeout (5 s), until a pipeline is loaded.
  static constexpr std::chrono::milliseconds kDefaultGrace{12000};
  std::atomic<long long> grace_ms_{0};
};

// The last resort's grace for a pipeline: the third stop request gives cancelled work no more time,
// and then its sinks abort_timeout to commit; beyond both, a margin for the end of the run.
std::chrono::milliseconds last_resort_grace(const Plan& plan) {
  return 2 * std::chrono::ceil<std::chrono::milliseconds>(plan.settings.abort_timeout) + std::chrono::seconds(2);
}

// Options shared by the commands that load pipelines.
struct LoadArgs {
  std::vector<std::string> sets;
  std::vector<std::string> plugins;
  bool resume = false;  // run --resume: settings.serve serves on the port the recorded run used
};

// The node types: built-ins plus --plugin libraries. Null (with the reasons printed) when a plugin
// cannot be used.
std::unique_ptr<Registry> make_registry(const std::vector<std::string>& plugins) {
  auto registry = std::make_unique<Registry>();
  register_builtin_nodes(*registry);
  bool ok = true;
  for (const auto& p : plugins) {
    if (std::string error = load_plugin(p, *registry); !error.empty()) {
      cli::say(stderr, "error", "plugin", error);
      ok = false;
    }
  }
  return ok ? std::move(registry) : nullptr;
}

// `settings.serve` as written, read before the pipeline is loaded: the server must run first, so
// that ${SERVE_URL} can be substituted.
std::string serve_folder(const std::string& text, const std::string& file) {
  Diagnostics ignored;
  SpecNode root = parse_spec(text, file, process_env(), ignored);
  const SpecNode* settings = root.is_map() ? root.find("settings") : nullptr;
  const SpecNode* serve = settings && settings->is_map() ? settings->find("serve") : nullptr;
  if (!serve || !serve->is_scalar()) return "";
  std::filesystem::path dir(serve->scalar);
  if (dir.is_relative()) dir = std::filesystem::path(file).parent_path() / dir;
  return dir.lexically_normal().string();
}

// The port on which the run recorded in a pipeline's settings.state served its settings.serve
// site (0: none recorded), and that state file.
struct Recorded {
  int port = 0;
  std::string state;
};

// For run --resume: the URLs the interrupted run recorded name its site's port, so the site is
// served there again. settings.state is read from the pipeline as it will run (--set included),
// loaded once before the server starts.
Recorded recorded_serve_port(const std::string& text, const std::string& file, const Registry& registry,
                             const LoadOptions& options) {
  Diagnostics ignored;  // the real load says them
  auto draft = load_pipeline_text(text, file, registry, options, ignored);
  if (!draft || draft->settings.state.empty()) return {};
  Recorded out{0, draft->settings.state};
  const auto url = RunState::recorded(out.state, "serve_url");  // http://127.0.0.1:PORT
  const auto colon = url ? url->rfind(':') : std::string::npos;
  if (colon == std::string::npos) return out;
  const std::string_view digits = std::string_view(*url).substr(colon + 1);
  int port = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
  if (ec == std::errc() && end == digits.data() + digits.size() && port > 0 && port < 65536) out.port = port;
  return out;
}

// The fixture server of settings.serve for `folder`, on `recorded.port` when there is one; null,
// with the reason in `diags`, when it cannot start.
std::unique_ptr<fixture::FixtureServer> serve(const std::string& folder, const Recorded& recorded,
                                              const std::string& file, Diagnostics& diags) {
  if (!std::filesystem::is_directory(folder)) {
    diags.error(Location{file}, fmt::format("settings.serve: '{}' is not a folder", folder));
    return nullptr;
  }
  try {
    return std::make_unique<fixture::FixtureServer>(folder, recorded.port);
  } catch (const std::system_error& e) {
    diags.error(Location{file}, fmt::format("settings.serve: cannot serve '{}': {}", folder, thread_refused(e)));
    return nullptr;
  } catch (const std::exception& e) {
    if (recorded.port == 0) {
      diags.error(Location{file}, fmt::format("settings.serve: cannot serve '{}': {}", folder, e.what()));
    } else {
      diags.error(Location{file},
                  fmt::format("settings.serve: --resume serves '{}' on port {} again, where the run recorded in '{}' "
                              "served it (its URLs name that port), but the port is in use; free it, or run "
                              "without --resume",
                              folder, recorded.port, recorded.state));
    }
    return nullptr;
  }
}

// A loaded pipeline with what it needs while it runs: its registry (plugins included) and the
// fixture server of `settings.serve`.
struct Loaded {
  std::unique_ptr<Registry> registry;
  std::unique_ptr<fixture::FixtureServer> server;
  std::optional<Plan> plan;

  // What the run keeps with it for a later --resume: the served site's URL.
  std::vector<std::pair<std::string, std::string>> facts() const {
    if (!server) return {};
    return {{"serve_url", server->url("")}};
  }
};

// Loads `file`: plugins, the served folder, then the pipeline. Prints every error; plan is empty
// when the pipeline cannot run.
Loaded load(const std::string& file, const LoadArgs& args, bool start_server) {
  Loaded out;
  bool ok = true;
  LoadOptions options;
  options.overrides = parse_overrides(args.sets, ok);
  out.registry = make_registry(args.plugins);
  if (!ok || !out.registry) return out;
  Diagnostics diags;
  auto text = read_pipeline_file(file, diags);
  if (!text) {
    cli::print_diagnostics(stderr, diags);
    return out;
  }
  std::string served = serve_folder(*text, file);
  // validate: a placeholder, nothing is served
  auto serve_url = std::make_shared<std::string>("http://127.0.0.1:1");
  // ${PIPELINE_DIR}: the pipeline file's folder, for files that go with it (seeds.csv), wherever
  // sluice runs from.
  std::error_code ec;
  std::filesystem::path folder = std::filesystem::path(file).parent_path();
  if (folder.empty()) folder = ".";
  std::string pipeline_dir = std::filesystem::absolute(folder, ec).lexically_normal().string();
  if (pipeline_dir.size() > 1 && pipeline_dir.ends_with('/')) pipeline_dir.pop_back();
  options.env = [serve_url, pipeline_dir](const std::string& name) -> std::optional<std::string> {
    if (name == "SERVE_URL") return *serve_url;
    if (name == "PIPELINE_DIR") return pipeline_dir;
    return process_env()(name);
  };
  load_pipeline_plugins(*text, file, options, *out.registry, diags);
  if (diags.empty() && !served.empty() && start_server) {
    out.server =
        serve(served, args.resume ? recorded_serve_port(*text, file, *out.registry, options) : Recorded{}, file, diags);
    if (!out.server) {
      cli::print_diagnostics(stderr, diags);
      return out;
    }
    *serve_url = out.server->url("");  // http://127.0.0.1:PORT, no trailing slash
    spdlog::info("serving {} at {}", served, *serve_url);
  }
  if (diags.empty()) out.plan = load_pipeline_text(*text, file, *out.registry, options, diags);
  if (!out.plan) cli::print_diagnostics(stderr, diags);
  return out;
}

// Says that `path` cannot be written, with errno's reason; false.
bool cannot_write(const std::string& path) {
  cli::say(stderr, "error", "output", fmt::format("cannot write '{}': {}", path, std::strerror(errno)));
  return false;
}

// Writes `text` to `path` (closed and checked: a full disk shows at close); false, with the reason
// printed, when it cannot.
bool write_file(const std::string& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  out.close();
  return out ? true : cannot_write(path);
}

// Whether `path` can be written, tried before a run whose end writes it (--stats-json): a missing
// folder found out after a crawl of hours loses the figures. Nothing is truncated; a file made by
// the try is removed again. False, with the reason printed, when it cannot.
bool can_write(const std::string& path) {
  std::error_code ec;
  const bool existed = std::filesystem::exists(path, ec);
  std::ofstream out(path, std::ios::binary | std::ios::app);
  if (!out) return cannot_write(path);
  out.close();
  if (!existed) std::filesystem::remove(path, ec);
  return true;
}

// After an abandoned run (RunReport::abandoned): threads stuck in a node are still running, and
// exiting normally would run static destructors (oneTBB's among them) that may wait for them.
[[noreturn]] void exit_now(int code) {
  if (cli::json_log()) {
    cli::log_json(stderr, "error", "exit", "exiting without waiting for the stuck nodes");
  } else {
    fmt::print(stderr, "sluice: exiting without waiting for the stuck nodes\n");
  }
  spdlog::default_logger()->flush();
  std::fflush(nullptr);
  std::_Exit(code);
}

struct RunArgs {
  LoadArgs load;
  bool quiet = false;
  bool resume = false;
  std::string stats_json;
  int preview = 0;
  std::string progress_every = "60s";
  std::string metrics;  // --metrics ADDRESS
};

int cmd_run(const std::string& file, const RunArgs& args) {
  const auto every =
      args.progress_every == "0" ? std::optional(std::chrono::nanoseconds{}) : parse_duration(args.progress_every);
  if (!every) {
    cli::say(stderr, "error", "usage",
             fmt::format("--progress-every: '{}' is not a duration (60s, 5m, 0 for never)", args.progress_every));
    return kInvalid;
  }
  StopSignal stop;
  std::optional<SignalWatcher> watcher(std::in_place, stop, true);
  LoadArgs load_args = args.load;
  load_args.resume = args.resume;
  Loaded loaded = load(file, load_args, true);
  if (!loaded.plan) return kInvalid;
  const Plan& plan = *loaded.plan;
  watcher->allow(last_resort_grace(plan));
  if (args.resume && plan.settings.state.empty()) {
    cli::say(stderr, "error", "usage",
             fmt::format("--resume needs settings.state in '{}' (the file that records progress)", file));
    return kInvalid;
  }
  if (args.resume) {
    // The state records what files the sources read, but not what came on standard input.
    for (const auto& node : plan.nodes) {
      if (node.type->kind != NodeKind::source) continue;
      node.config.each([&](const std::string& name, const std::string& text) {
        if (text != "-") return;
        cli::say(stderr, "warning", "resume",
                 fmt::format("source '{}' reads standard input ({}: -): --resume cannot check that it gives the "
                             "lines of the interrupted run, and skips the records done then by their position",
                             node.id, name));
      });
    }
  }
  if (!args.stats_json.empty() && !can_write(args.stats_json)) return kInvalid;
  std::unique_ptr<cli::MetricsServer> metrics;
  if (!args.metrics.empty()) {
    std::string error;
    metrics = cli::MetricsServer::start(args.metrics, plan, error);
    if (!metrics) {
      cli::say(stderr, "error", "usage", error);
      return kInvalid;
    }
    spdlog::info("metrics at {}", metrics->url());
  }
  spdlog::debug("running pipeline '{}' ({} nodes){}", plan.settings.name, plan.nodes.size(),
                args.resume ? ", resuming" : "");
  // A terminal gets a live line; a log (a file, journald, CI) a line every --progress-every.
  const bool live = !args.quiet && !cli::json_log() && ::isatty(STDERR_FILENO);
  const bool logged = !args.quiet && !live && every->count() > 0;
  const bool warnings = spdlog::should_log(spdlog::level::warn);
  using Mode = cli::ProgressLine::Mode;
  cli::ProgressLine line(plan, stderr, live ? Mode::live : logged ? Mode::logged : Mode::none, *every, warnings);
  RunReport report;
  {
    RunOptions options;
    options.stop = &stop;
    options.resume = args.resume;
    options.facts = loaded.facts();
    if (live || logged || warnings || metrics) {
      options.progress = [&line, &metrics, show = live || logged || warnings](const RunProgress& p) {
        if (metrics) metrics->update(p);
        if (show) line.update(p);
      };
    }
    if (logged)
      options.progress_interval = std::min<std::chrono::milliseconds>(
          options.progress_interval, std::chrono::ceil<std::chrono::milliseconds>(*every));
    report = run_pipeline(plan, options);
  }
  watcher.reset();
  line.clear();
  line.finish(report);
  if (metrics) metrics->finish(report);
  if (report.already_finished) {
    cli::say(stderr, "info", "end",
             fmt::format("pipeline '{}' already finished (state '{}'); nothing to do", plan.settings.name,
                         plan.settings.state));
    return 0;
  }
  // The closing line, and for a run that one failed record ended (a 404 in a crawl), how to keep
  // going instead.
  std::string summary, hint;
  if (report.status == RunStatus::failed) {
    summary = fmt::format("pipeline '{}' failed with {} error(s)", plan.settings.name,
                          report.errors.size() + report.errors_not_kept);
    for (const auto& e : report.errors) {
      auto node = std::find_if(plan.nodes.begin(), plan.nodes.end(), [&](const PlanNode& n) { return n.id == e.node; });
      if (e.record.empty() || node == plan.nodes.end() || node->on_error != OnError::fail ||
          node->type->output_index("error") < 0)
        continue;
      hint = fmt::format(
          "a failed record stops the run because node '{}' has on_error: fail (the default); "
          "on_error: skip drops such records and goes on, route sends them to '{}.error'",
          e.node, e.node);
      break;
    }
  } else if (report.status == RunStatus::interrupted) {
    summary = fmt::format("pipeline '{}' interrupted; records received by sinks were committed{}", plan.settings.name,
                          plan.settings.state.empty() ? "" : " (continue it with --resume)");
  }
  // A stats file asked for and not written fails a run that otherwise succeeded (a CI step would
  // read it next).
  bool stats_written = true;
  const auto write_stats = [&] {
    stats_written = args.stats_json.empty() || write_file(args.stats_json, cli::report_json(plan, report));
  };
  if (cli::json_log()) {
    write_stats();
    cli::log_report(stderr, plan, report, warnings, summary, hint, stats_written);
  } else {
    if (!args.quiet) {
      cli::print_stats(stderr, report);
      cli::print_tables(stderr, report);
    }
    if (warnings) cli::print_skipped(stderr, report);
    for (const auto& e : report.errors) fmt::print(stderr, "error: {}\n", e.to_string());
    if (report.errors_not_kept > 0) fmt::print(stderr, "... and {} more errors\n", report.errors_not_kept);
    if (!summary.empty()) fmt::print(stderr, "sluice: {}\n", summary);
    if (!hint.empty()) fmt::print(stderr, "sluice: {}\n", hint);
    write_stats();
  }
  if (args.preview > 0) fmt::print("{}", cli::preview_stores(plan, args.preview));
  const int code = report.exit_code() == 0 && !stats_written ? 1 : report.exit_code();
  if (report.abandoned) exit_now(code);
  return code;
}

int cmd_validate(const std::vector<std::string>& files, const LoadArgs& args) {
  int invalid = 0;
  for (const auto& file : files) {
    if (load(file, args, false).plan) {
      fmt::print("{}: ok\n", file);
    } else {
      ++invalid;
    }
  }
  return invalid ? kInvalid : 0;
}

// The format asked for, else the one an output file's name says (`-o pipeline.svg`), else DOT.
std::string graph_format(const std::string& format, const std::string& output) {
  if (!format.empty()) return format;
  std::string extension = std::filesystem::path(output).extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (extension == ".svg" || extension == ".png") return extension.substr(1);
  return "dot";
}

int cmd_graph(const std::string& file, const LoadArgs& args, const std::string& asked, const std::string& output) {
  const std::string format = graph_format(asked, output);
  Loaded loaded = load(file, args, false);
  if (!loaded.plan) return kInvalid;
  std::string dot = cli::pipeline_dot(*loaded.plan);
  if (format == "dot") {
    if (output.empty()) {
      fmt::print("{}", dot);
    } else {
      if (!write_file(output, dot)) return kInvalid;
    }
    return 0;
  }
  if (std::string error = cli::render_dot(dot, format, output); !error.empty()) {
    cli::say(stderr, "error", "output", error);
    return kInvalid;
  }
  return 0;
}

// Runs each pipeline, checks its `expect:` assertions, prints each result and a closing line.
int cmd_test(const std::vector<std::string>& files, const LoadArgs& args) {
  int passed = 0, failed = 0, invalid = 0;
  bool abandoned = false;
  StopSignal stop;  // one for every pipeline: an interrupted one ends the command
  SignalWatcher watcher(stop, false);
  for (const auto& file : files) {
    fmt::print("{}\n", file);
    Loaded loaded = load(file, args, true);
    if (!loaded.plan) {
      fmt::print("  FAIL the pipeline is invalid\n");
      ++failed;
      ++invalid;
      if (stop.requests() > 0) break;
      continue;
    }
    watcher.allow(last_resort_grace(*loaded.plan));
    RunReport report;
    {
      RunOptions options;
      options.stop = &stop;
      options.facts = loaded.facts();
      report = run_pipeline(*loaded.plan, options);
    }
    for (const auto& e : report.errors) fmt::print("  error: {}\n", e.to_string());
    cli::print_skipped(stdout, report, "  ");
    for (const auto& r : cli::check_expectations(*loaded.plan, report)) {
      fmt::print("  {} {}\n", r.passed ? "ok  " : "FAIL", r.what);
      (r.passed ? passed : failed)++;
    }
    abandoned = report.abandoned;
    if (stop.requests() > 0 || abandoned) break;  // interrupted: do not start the next pipeline
  }
  fmt::print("{} passed, {} failed\n", passed, failed);
  const int code = failed == 0 ? 0 : invalid == failed ? kInvalid : 1;
  if (abandoned) exit_now(code);
  return code;
}

void cmd_nodes(const Registry& registry) {
  for (const auto& name : registry.names()) {
    const NodeType* t = registry.find(name);
    std::string origin = registry.origin(name);
    fmt::print("{:<16} {:<10} {}{}\n", name, node_kind_name(t->kind), t->summary,
               origin == "built in" ? "" : " [" + origin + "]");
  }
}

// One line per config field (nested objects' fields as `parent.name`): name, type, default, doc.
using FieldRow = std::array<std::string, 4>;

void field_rows(const Schema& schema, const std::string& prefix, std::vector<FieldRow>& rows) {
  for (const auto& f : schema.fields()) {
    std::string extra =
        f.required ? "required" : (f.default_text ? fmt::format("default: {}", *f.default_text) : "optional");
    if (f.default_text && f.default_text->empty()) extra = "optional";
    rows.push_back({prefix + f.name, f.type_text(), extra, f.doc});
    if (f.object) field_rows(*f.object, prefix + f.name + ".", rows);
    // A map of objects (parse.html's fields, fetch's hosts): the fields of each entry, as NAME.<key>.field.
    if (f.type == FieldType::map && f.element && f.element->object)
      field_rows(*f.element->object, prefix + f.name + ".<" + f.element->name + ">.", rows);
  }
}

// Columns as wide as their widest cell up to a cap; a longer cell pushes the rest of its line to
// the right but never runs into the next column.
void print_rows(const std::vector<FieldRow>& rows) {
  constexpr std::array<std::size_t, 3> kCap = {24, 24, 20};
  std::array<std::size_t, 3> width{};
  for (const auto& row : rows) {
    for (std::size_t c = 0; c < width.size(); ++c) width[c] = std::max(width[c], std::min(row[c].size(), kCap[c]));
  }
  for (const auto& row : rows) {
    fmt::print("  {:<{}}  {:<{}}  {:<{}}  {}\n", row[0], width[0], row[1], width[1], row[2], width[2], row[3]);
  }
}

int cmd_describe(const Registry& registry, const std::string& name) {
  const NodeType* t = registry.find(name);
  if (!t) {
    std::string hint = closest_match(name, registry.names());
    cli::say(
        stderr, "error", "usage",
        fmt::format("unknown node type '{}'{}", name, hint.empty() ? "" : fmt::format(" (did you mean '{}'?)", hint)));
    return kInvalid;
  }
  fmt::print("{} ({})\n  {}\n\nports:\n", t->name, node_kind_name(t->kind), t->summary);
  for (const auto& p : t->ports) {
    fmt::print("  {:<8} {:<6} {}\n", p.name, p.direction == PortDirection::input ? "input" : "output", p.doc);
  }
  fmt::print("\nconfig:\n");
  std::vector<FieldRow> rows;
  field_rows(t->schema, "", rows);
  rows.push_back({"on_error", "one of fail|skip|route", "default: fail", "what a failed record does"});
  print_rows(rows);
  fmt::print("\nexample:\n{}\n", t->example);
  return 0;
}

// Every transfer in flight holds a socket, and the usual soft limit of open files (1024) is below
// what a high max_in_flight over many hosts needs: raised to the hard limit, as the JVM and Go's
// runtime do. Nothing in sluice waits with select(), so descriptors past 1024 are fine (plugins
// are told the same: docs/writing-nodes.md).
void raise_open_file_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
  limit.rlim_cur = limit.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &limit);  // if refused, the run goes on with the soft limit it had
}

}  // namespace

int main(int argc, char** argv) {
  // A closed pipe (`sluice run p.yaml | head`) is a write error of the node writing to it, which
  // fails the run the usual way (stores commit what they received), not a signal that kills the
  // process with their last batches uncommitted.
  ::signal(SIGPIPE, SIG_IGN);
  // Likewise a file past the shell's size limit (`ulimit -f`): a write error (EFBIG) that says
  // "File too large", not a SIGXFSZ that kills the process and dumps its core.
  ::signal(SIGXFSZ, SIG_IGN);
  raise_open_file_limit();
  CLI::App app{"sluice: run declarative YAML dataflow pipelines"};
  app.require_subcommand(1);
  app.fallthrough();  // --log-level may come after the subcommand too
  std::string file, type_name, format, output, log_level = "info";
  std::vector<std::string> files;
  RunArgs run_args;
  LoadArgs& load_args = run_args.load;

  auto add_load_options = [&](CLI::App* cmd) {
    cmd->add_option("--set", load_args.sets, "override a setting (key=value) or a node's config (id.key=value); repeatable");
    cmd->add_option("--plugin", load_args.plugins, "load node types from a plugin library (repeatable)");
  };
  auto* run = app.add_subcommand("run", "run a pipeline");
  run->add_option("pipeline", file, "pipeline YAML file")->required();
  add_load_options(run);
  run->add_flag("--resume", run_args.resume, "continue the interrupted run recorded in settings.state");
  run->add_option("--metrics", run_args.metrics,
                  "serve the run's figures in the Prometheus text format at http://ADDRESS/metrics while it goes: "
                  "PORT (on 127.0.0.1), HOST:PORT or [IPv6]:PORT");
  run->add_option("--stats-json", run_args.stats_json, "write the run's stats and errors as JSON to this file");
  run->add_option("--preview", run_args.preview, "print the first N rows of every store.sqlite table at the end");
  run->add_flag("-q,--quiet", run_args.quiet, "no progress line and no stats table");
  run->add_option("--progress-every", run_args.progress_every,
                  "when standard error is not a terminal, log a progress line this often (default 60s; 0: never)");

  auto* validate = app.add_subcommand("validate", "check pipeline files and print every error");
  validate->add_option("pipelines", files, "pipeline YAML files")->required();
  add_load_options(validate);

  auto* graph = app.add_subcommand("graph", "draw a pipeline: Graphviz DOT, or SVG/PNG through 'dot'");
  graph->add_option("pipeline", file, "pipeline YAML file")->required();
  graph
      ->add_option("--format", format,
                   "dot, svg or png; default: what the -o file's name ends in (.svg, .png), else dot")
      ->check(CLI::IsMember({"dot", "svg", "png"}));
  graph->add_option("-o,--output", output, "write to this file instead of standard output");
  add_load_options(graph);

  auto* test = app.add_subcommand("test", "run pipelines and check their expect: assertions");
  test->add_option("pipelines", files, "pipeline YAML files")->required();
  add_load_options(test);

  auto* nodes = app.add_subcommand("nodes", "list node types");
  nodes->add_option("--plugin", load_args.plugins, "also list the node types of a plugin library");
  auto* describe = app.add_subcommand("describe", "show a node type's ports, config fields and an example");
  describe->add_option("type", type_name, "node type name")->required();
  describe->add_option("--plugin", load_args.plugins, "also know the node types of a plugin library");

  app.add_option("--log-level", log_level, "trace, debug, info (default), warn, error or off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
  std::string log_format = "text";
  app.add_option("--log-format", log_format,
                 "text (default), or json: what sluice writes on standard error as one JSON object per line "
                 "(time, level, event, message and the event's fields), for a log collector")
      ->check(CLI::IsMember({"text", "json"}));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : kInvalid;
  }
  auto logger = spdlog::stderr_color_mt("sluice");
  logger->set_pattern("sluice: %v");
  if (log_format == "json") {
    cli::set_log_format(cli::LogFormat::json);
    logger->set_formatter(cli::json_formatter());
  }
  logger->set_level(spdlog::level::from_str(log_level));
  spdlog::set_default_logger(logger);

  try {
    if (run->parsed()) return cmd_run(file, run_args);
    if (validate->parsed()) return cmd_validate(files, load_args);
    if (graph->parsed()) return cmd_graph(file, load_args, format, output);
    if (test->parsed()) return cmd_test(files, load_args);
    auto registry = make_registry(load_args.plugins);
    if (!registry) return kInvalid;
    if (nodes->parsed()) {
      cmd_nodes(*registry);
      return 0;
    }
    if (describe->parsed()) return cmd_describe(*registry, type_name);
  } catch (const CannotStart& e) {
    cli::say(stderr, "error", "start", e.what());
    return 1;
  } catch (const std::system_error& e) {
    // fmt::print to a standard output that is closed (`| head`) or full. What a run stored is
    // committed by then; the output the command was asked for is not complete.
    cli::say(stderr, "error", "output", fmt::format("cannot write the output: {}", e.what()));
    return 1;
  }
  return kInvalid;
}
