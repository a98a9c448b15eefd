#include "graph.hpp"

#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <vector>

namespace sluice::cli {

namespace {

std::string dot_quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string shape_of(NodeKind kind) {
  switch (kind) {
    case NodeKind::source:
      return "shape=invhouse, fillcolor=\"#e8f0fe\"";
    case NodeKind::sink:
      return "shape=cylinder, fillcolor=\"#e6f4ea\"";
    case NodeKind::limit:
      return "shape=octagon, fillcolor=\"#fef7e0\"";
    case NodeKind::async:
      return "shape=box, style=\"rounded,filled,bold\", fillcolor=\"#f3e8fd\"";
    case NodeKind::transform:
      return "shape=box, fillcolor=\"#ffffff\"";
  }
  return "shape=box";
}

// The few settings that shape the flow, shown under the node's id and type.
std::vector<std::string> details(const PlanNode& n) {
  std::vector<std::string> out;
  const Config& c = n.config;
  if (n.type->kind == NodeKind::limit) {
    out.push_back(fmt::format("max_in_flight {}", c.integer("max_in_flight")));
    if (c.has("release") && c.string("release") != "done") out.push_back("release " + c.string("release"));
  }
  if (n.type->name == "fetch") {
    out.push_back(fmt::format("per_host {}", c.integer("per_host")));
    if (c.has("rate")) out.push_back("rate " + c.string("rate"));
  }
  if (n.type->name == "store.sqlite") out.push_back(c.string("path") + ": " + c.string("table"));
  if (n.on_error != OnError::fail) out.push_back(n.on_error == OnError::skip ? "on_error skip" : "on_error route");
  return out;
}

}  // namespace

std::string pipeline_dot(const Plan& plan) {
  std::string out = fmt::format("digraph {} {{\n", dot_quote(plan.settings.name));
  out += "  rankdir=LR;\n  node [style=filled, fontname=\"Helvetica\", fontsize=11];\n";
  out += "  edge [fontname=\"Helvetica\", fontsize=9];\n";
  for (const auto& n : plan.nodes) {
    std::string label = n.id + "\\n" + n.type->name;
    for (const auto& d : details(n)) label += "\\n" + d;
    out += fmt::format("  {} [label=\"{}\", {}];\n", dot_quote(n.id), label, shape_of(n.type->kind));
  }
  for (const auto& e : plan.edges) {
    const PlanNode& from = plan.nodes[e.from_node];
    const PlanNode& to = plan.nodes[e.to_node];
    const auto outputs = from.type->port_names(PortDirection::output);
    const auto inputs = to.type->port_names(PortDirection::input);
    std::vector<std::string> attrs;
    if (!outputs.empty() && e.from_port != outputs.front()) attrs.push_back("taillabel=" + dot_quote(e.from_port));
    if (inputs.size() > 1) attrs.push_back("headlabel=" + dot_quote(e.to_port));
    if (e.from_port == "error") attrs.push_back("style=dashed, color=\"#c5221f\", fontcolor=\"#c5221f\"");
    out += fmt::format("  {} -> {}{};\n", dot_quote(from.id), dot_quote(to.id),
                       attrs.empty() ? "" : " [" + fmt::format("{}", fmt::join(attrs, ", ")) + "]");
  }
  out += "}\n";
  return out;
}

std::string render_dot(const std::string& dot, const std::string& format, const std::string& out_path) {
  std::string program;
  if (const char* path = std::getenv("PATH")) {
    std::string dirs = path;
    for (std::size_t start = 0; start <= dirs.size();) {
      std::size_t end = dirs.find(':', start);
      if (end == std::string::npos) end = dirs.size();
      auto candidate = std::filesystem::path(dirs.substr(start, end - start)) / "dot";
      if (::access(candidate.c_str(), X_OK) == 0) {
        program = candidate.string();
        break;
      }
      start = end + 1;
    }
  }
  if (program.empty()) {
    return fmt::format(
        "--format {} needs Graphviz's 'dot' program, which is not installed (Debian: apt-get install graphviz); "
        "--format dot prints the graph without it",
        format);
  }
  // No shell: the output path goes to dot as an argument of its own.
  std::vector<std::string> args = {program, "-T" + format};
  if (!out_path.empty()) args.insert(args.end(), {"-o", out_path});
  // Built before fork: the child of a process with threads (a plugin's) makes only
  // async-signal-safe calls, no allocation.
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int fds[2];
  if (::pipe(fds) != 0) return "cannot create a pipe for 'dot'";
  pid_t pid = ::fork();
  if (pid < 0) return "cannot start 'dot'";
  if (pid == 0) {
    ::dup2(fds[0], STDIN_FILENO);
    ::close(fds[0]);
    ::close(fds[1]);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(fds[0]);
  for (std::size_t done = 0; done < dot.size();) {
    ssize_t n = ::write(fds[1], dot.data() + done, dot.size() - done);
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
  ::close(fds[1]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return fmt::format("'dot' failed (exit status {})", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  }
  return "";
}

}  // namespace sluice::cli
