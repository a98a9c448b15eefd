// fixture_server: the test HTTP server as a program, for smoke pipelines and benchmarks.
//   fixture_server [--root DIR] [--port N] [--port-file FILE]
// Prints "listening on http://127.0.0.1:PORT (reset: http://127.0.0.1:RPORT/)" and serves until
// SIGINT or SIGTERM.
#include <fmt/format.h>
#include <signal.h>

#include <cstring>
#include <fstream>

#include "fixture_server.hpp"

int main(int argc, char** argv) {
  std::string root, port_file;
  int port = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--root" && i + 1 < argc) {
      root = argv[++i];
    } else if (a == "--port" && i + 1 < argc) {
      port = std::atoi(argv[++i]);
    } else if (a == "--port-file" && i + 1 < argc) {
      port_file = argv[++i];
    } else {
      fmt::print(stderr, "usage: fixture_server [--root DIR] [--port N] [--port-file FILE]\n");
      return 2;
    }
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  try {
    sluice::fixture::FixtureServer server(root, port);
    if (!port_file.empty()) std::ofstream(port_file) << server.port() << "\n";
    fmt::print("listening on {} (reset: {})\n", server.url(""), server.reset_url());
    std::fflush(stdout);
    int sig = 0;
    sigwait(&set, &sig);
  } catch (const std::exception& e) {
    fmt::print(stderr, "fixture_server: {}\n", e.what());
    return 1;
  }
  return 0;
}
