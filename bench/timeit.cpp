// timeit: whole-process figures of one command at microsecond resolution, for the benchmark
// scripts. /usr/bin/time prints wall and CPU seconds with two decimals: 10 ms steps, about 3% of a
// 0.3 s fetch run, too coarse for ratios against targets like 0.9x and 1.3x.
//   timeit OUTPUT_FILE COMMAND [ARGS...]
// Runs COMMAND with the same stdin, stdout and stderr, and writes one line to OUTPUT_FILE:
// "wall_seconds user_seconds system_seconds peak_rss_kb" (the format of /usr/bin/time -f "%e %U %S %M").
// Exits with the command's status (128 + signal number when it was killed).
#include <fmt/format.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace {

double seconds(const timeval& t) {
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
}

double now() {
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    fmt::print(stderr, "usage: timeit OUTPUT_FILE COMMAND [ARGS...]\n");
    return 2;
  }
  const double started = now();
  const pid_t child = fork();
  if (child < 0) {
    fmt::print(stderr, "timeit: fork: {}\n", std::strerror(errno));
    return 2;
  }
  if (child == 0) {
    execvp(argv[2], argv + 2);
    fmt::print(stderr, "timeit: {}: {}\n", argv[2], std::strerror(errno));
    _exit(127);
  }
  int status = 0;
  rusage usage{};
  while (wait4(child, &status, 0, &usage) < 0) {
    if (errno != EINTR) {
      fmt::print(stderr, "timeit: wait4: {}\n", std::strerror(errno));
      return 2;
    }
  }
  const double wall = now() - started;
  std::FILE* out = std::fopen(argv[1], "w");
  if (!out) {
    fmt::print(stderr, "timeit: {}: {}\n", argv[1], std::strerror(errno));
    return 2;
  }
  fmt::print(out, "{:.6f} {:.6f} {:.6f} {}\n", wall, seconds(usage.ru_utime), seconds(usage.ru_stime), usage.ru_maxrss);
  std::fclose(out);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}
