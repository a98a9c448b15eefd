// Starting the sluice binary (and later the fixture server) as a real child process.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace sluice::test {

// A child process with stdout and stderr redirected to files. The destructor kills and reaps it.
class Process {
 public:
  Process(const std::vector<std::string>& argv, const std::string& stdout_path, const std::string& stderr_path)
      : Process(argv, -1, stdout_path, stderr_path) {}
  // Started with the `ignored` signals ignored, as nohup starts a program with SIGHUP.
  Process(const std::vector<std::string>& argv, const std::string& stdout_path, const std::string& stderr_path,
          const std::vector<int>& ignored)
      : Process(argv, -1, stdout_path, stderr_path, ignored) {}
  // Standard output on `stdout_fd` (the write end of a pipe, say) instead of a file.
  Process(const std::vector<std::string>& argv, int stdout_fd, const std::string& stderr_path)
      : Process(argv, stdout_fd, "", stderr_path) {}

 private:
  Process(const std::vector<std::string>& argv, int stdout_fd, const std::string& stdout_path,
          const std::string& stderr_path, const std::vector<int>& ignored = {}) {
    // Everything that allocates happens before fork: the test process has threads (TBB workers, a
    // fixture server), and one of them may hold the allocator's lock at the fork, which the child
    // would then wait for forever (seen under ASan: a child stuck in operator new before execv).
    // After fork the child makes only async-signal-safe calls.
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const char* out_path = stdout_path.c_str();
    const char* err_path = stderr_path.c_str();
    // A signal sent to the child before it runs the program (a test that stops it soon) must not
    // run the test process's handlers (Catch's) in the child: signals stay blocked across fork, and
    // the child sets their default actions before it lets them in. SIGINT, SIGTERM and SIGHUP get
    // theirs even when the tests were started ignoring them (a job a script runs in the background
    // ignores SIGINT, nohup's SIGHUP): the child is a run started at a terminal. Other ignored
    // signals stay ignored, as exec keeps them.
    sigset_t all, before;
    ::sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &before);
    pid_ = ::fork();
    if (pid_ == 0) {
      for (int sig = 1; sig < NSIG; ++sig) {
        struct sigaction action {};
        if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP ||
            (::sigaction(sig, nullptr, &action) == 0 && action.sa_handler != SIG_IGN))
          ::signal(sig, SIG_DFL);
      }
      for (int sig : ignored) ::signal(sig, SIG_IGN);
      ::pthread_sigmask(SIG_SETMASK, &before, nullptr);
      int out = stdout_fd >= 0 ? stdout_fd : ::open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int err = ::open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(out, STDOUT_FILENO);
      ::dup2(err, STDERR_FILENO);
      int null = ::open("/dev/null", O_RDONLY);
      ::dup2(null, STDIN_FILENO);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    ::pthread_sigmask(SIG_SETMASK, &before, nullptr);
    if (pid_ < 0) throw std::runtime_error("fork failed");
  }

 public:
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  pid_t pid() const { return pid_; }
  void signal(int sig) { ::kill(pid_, sig); }

  // Waits for the exit; returns the exit code, or 128+signal when killed by a signal.
  int wait() {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    reaped_ = true;
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return 128 + WTERMSIG(status);
  }
  // As wait(), for at most `limit`: nullopt when the process still runs then (the destructor kills it).
  std::optional<int> wait_for(std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    reaped_ = true;
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return 128 + WTERMSIG(status);
  }

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
};

}  // namespace sluice::test
