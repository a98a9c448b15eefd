// The sluice runner: run and validate pipelines, list and describe node types.
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <thread>

#include "sluice/pipeline.hpp"
#include "sluice/registry.hpp"
#include "sluice/run.hpp"

namespace {

using namespace sluice;

std::vector<std::pair<std::string, std::string>> parse_overrides(const std::vector<std::string>& sets, bool& ok) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& s : sets) {
    auto eq = s.find('=');
    if (eq == std::string::npos || eq == 0) {
      fmt::print(stderr, "sluice: error: --set expects key=value, got '{}'\n", s);
      ok = false;
      continue;
    }
    out.emplace_back(s.substr(0, eq), s.substr(eq + 1));
  }
  return out;
}

void print_stats(const RunReport& report) {
  fmt::print(stderr, "{:<16} {:<12} {:>12} {:>12} {:>8} {:>10}\n", "node", "type", "in", "out", "errors", "busy");
  for (const auto& n : report.nodes) {
    fmt::print(stderr, "{:<16} {:<12} {:>12} {:>12} {:>8} {:>9.3f}s\n", n.id, n.type, n.records_in, n.records_out,
               n.errors, std::chrono::duration<double>(n.busy).count());
  }
  fmt::print(stderr, "elapsed {:.3f}s\n", std::chrono::duration<double>(report.elapsed).count());
}

// Signal handling: SIGINT/SIGTERM are blocked in every thread and taken by one watcher thread with
// sigwait, which asks the run to stop (first signal graceful, second abort).
class SignalWatcher {
 public:
  explicit SignalWatcher(StopSignal& stop) : stop_(stop) {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    sigaddset(&set_, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set_, nullptr);
    thread_ = std::thread([this] {
      while (true) {
        int sig = 0;
        if (sigwait(&set_, &sig) != 0) continue;
        if (sig == SIGUSR1) return;  // shutdown of the watcher itself
        if (stop_.requests() == 0) {
          fmt::print(stderr, "sluice: stopping: finishing work in flight (press Ctrl-C again to abort)\n");
        } else {
          fmt::print(stderr, "sluice: aborting\n");
        }
        stop_.request(sig);
      }
    });
  }
  ~SignalWatcher() {
    pthread_kill(thread_.native_handle(), SIGUSR1);
    thread_.join();
  }

 private:
  StopSignal& stop_;
  sigset_t set_;
  std::thread thread_;
};

int cmd_run(const Registry& registry, const std::string& file, const std::vector<std::string>& sets, bool quiet,
            bool resume) {
  bool ok = true;
  LoadOptions options;
  options.overrides = parse_overrides(sets, ok);
  if (!ok) return 2;
  Diagnostics diags;
  auto plan = load_pipeline_file(file, registry, options, diags);
  if (!plan) {
    fmt::print(stderr, "{}", diags.to_string());
    return 2;
  }
  if (resume && plan->settings.state.empty()) {
    fmt::print(stderr, "sluice: error: --resume needs settings.state in '{}' (the file that records progress)\n",
               file);
    return 2;
  }
  StopSignal stop;
  RunReport report;
  {
    SignalWatcher watcher(stop);
    RunOptions run_options;
    run_options.stop = &stop;
    run_options.resume = resume;
    report = run_pipeline(*plan, run_options);
  }
  if (report.already_finished) {
    fmt::print(stderr, "sluice: pipeline '{}' already finished (state '{}'); nothing to do\n", plan->settings.name,
               plan->settings.state);
    return 0;
  }
  if (!quiet) print_stats(report);
  for (const auto& e : report.errors) fmt::print(stderr, "error: {}\n", e.to_string());
  if (report.errors_not_kept > 0) fmt::print(stderr, "... and {} more errors\n", report.errors_not_kept);
  if (report.status == RunStatus::failed) {
    fmt::print(stderr, "sluice: pipeline '{}' failed with {} error(s)\n", plan->settings.name,
               report.errors.size() + report.errors_not_kept);
  } else if (report.status == RunStatus::interrupted) {
    fmt::print(stderr, "sluice: pipeline '{}' interrupted; records received by sinks were committed\n",
               plan->settings.name);
  }
  return report.exit_code();
}

int cmd_validate(const Registry& registry, const std::vector<std::string>& files,
                 const std::vector<std::string>& sets) {
  bool ok = true;
  LoadOptions options;
  options.overrides = parse_overrides(sets, ok);
  if (!ok) return 2;
  int invalid = 0;
  for (const auto& file : files) {
    Diagnostics diags;
    if (load_pipeline_file(file, registry, options, diags)) {
      fmt::print("{}: ok\n", file);
    } else {
      fmt::print(stderr, "{}", diags.to_string());
      ++invalid;
    }
  }
  return invalid ? 2 : 0;
}

void cmd_nodes(const Registry& registry) {
  for (const auto& name : registry.names()) {
    const NodeType* t = registry.find(name);
    fmt::print("{:<14} {:<10} {}\n", name, node_kind_name(t->kind), t->summary);
  }
}

int cmd_describe(const Registry& registry, const std::string& name) {
  const NodeType* t = registry.find(name);
  if (!t) {
    std::string hint = closest_match(name, registry.names());
    fmt::print(stderr, "sluice: error: unknown node type '{}'{}\n", name,
               hint.empty() ? "" : fmt::format(" (did you mean '{}'?)", hint));
    return 2;
  }
  fmt::print("{} ({})\n  {}\n\nports:\n", t->name, node_kind_name(t->kind), t->summary);
  for (const auto& p : t->ports) {
    fmt::print("  {:<8} {:<6} {}\n", p.name, p.direction == PortDirection::input ? "input" : "output", p.doc);
  }
  fmt::print("\nconfig:\n");
  for (const auto& f : t->schema.fields()) {
    std::string extra =
        f.required ? "required" : (f.default_text ? fmt::format("default: {}", *f.default_text) : "optional");
    if (f.default_text && f.default_text->empty()) extra = "optional";
    fmt::print("  {:<10} {:<22} {:<20} {}\n", f.name, f.type_text(), extra, f.doc);
  }
  fmt::print("  {:<10} {:<22} {:<20} {}\n", "on_error", "one of fail|skip|route", "default: fail",
             "what a failed record does");
  fmt::print("\nexample:\n{}\n", t->example);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  sluice::Registry registry;
  sluice::register_builtin_nodes(registry);

  CLI::App app{"sluice: run declarative YAML dataflow pipelines"};
  app.require_subcommand(1);
  std::string file;
  std::vector<std::string> files, sets;
  bool quiet = false, resume = false;
  std::string type_name;

  auto* run = app.add_subcommand("run", "run a pipeline");
  run->add_option("pipeline", file, "pipeline YAML file")->required();
  run->add_option("--set", sets, "override a setting: key=value (repeatable)");
  run->add_flag("-q,--quiet", quiet, "do not print the stats table");
  run->add_flag("--resume", resume, "continue the interrupted run recorded in settings.state");

  auto* validate = app.add_subcommand("validate", "check pipeline files and print every error");
  validate->add_option("pipelines", files, "pipeline YAML files")->required();
  validate->add_option("--set", sets, "override a setting: key=value (repeatable)");

  auto* nodes = app.add_subcommand("nodes", "list node types");
  auto* describe = app.add_subcommand("describe", "show a node type's ports and config fields");
  describe->add_option("type", type_name, "node type name")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  if (run->parsed()) return cmd_run(registry, file, sets, quiet, resume);
  if (validate->parsed()) return cmd_validate(registry, files, sets);
  if (nodes->parsed()) {
    cmd_nodes(registry);
    return 0;
  }
  if (describe->parsed()) return cmd_describe(registry, type_name);
  return 2;
}
