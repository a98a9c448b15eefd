// A raw HTTP server on 127.0.0.1 for what the fixture server cannot send: it answers each request
// with the next of the responses it is given, byte for byte — any status line, header, framing or
// garbage — then shuts its side of the connection. Used by tests and tests/fuzz/fuzz_responses.cpp.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace sluice::test {

// Accepts connections on 127.0.0.1 one at a time, reads each request's head and answers it with the
// next of the responses given to begin() (the k-th request gets response k modulo their number),
// then shuts its sending side. Connections are closed at end(), when the run that made them is
// over (closing one the client still writes to would reset it).
class RawServer {
 public:
  RawServer() {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listen_fd_, 64) != 0) {
      ::close(listen_fd_);
      throw std::runtime_error("raw server: cannot listen on 127.0.0.1");
    }
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { loop(); });
  }
  ~RawServer() {
    stop_ = true;
    thread_.join();
    end();
    ::close(listen_fd_);
  }
  RawServer(const RawServer&) = delete;
  RawServer& operator=(const RawServer&) = delete;

  int port() const { return port_; }

  // From now on a request's body (its Content-Length) is read whole before the answer, which is
  // sent without a "100 Continue" first, as a server that does not know Expect would.
  void read_bodies() { read_bodies_ = true; }

  // The bytes of request bodies read so far.
  std::size_t body_bytes() {
    std::lock_guard lock(mutex_);
    return body_bytes_;
  }

  void begin(std::vector<std::string> responses) {
    std::lock_guard lock(mutex_);
    responses_ = std::move(responses);
    served_ = 0;
    accepted_ = 0;
  }

  // Closes the connections answered so far; returns how many connections were made since begin()
  // or the last end(), one still waiting to be accepted included. The responses go on in turn.
  std::size_t end() {
    pollfd p{listen_fd_, POLLIN, 0};
    const bool waiting = ::poll(&p, 1, 0) == 1;
    std::lock_guard lock(mutex_);
    for (int fd : held_) ::close(fd);
    held_.clear();
    return std::exchange(accepted_, 0) + (waiting ? 1 : 0);
  }

 private:
  void loop() {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) != 1) continue;
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      {
        std::lock_guard lock(mutex_);
        ++accepted_;
      }
      answer(fd);
    }
  }

  void answer(int fd) {
    using clock = std::chrono::steady_clock;
    const auto deadline = clock::now() + std::chrono::seconds(1);
    auto wait = [&](short events) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
      pollfd p{fd, events, 0};
      return left > 0 && ::poll(&p, 1, static_cast<int>(left)) == 1;
    };
    std::string head;
    char buf[4096];
    while (head.find("\r\n\r\n") == std::string::npos && head.size() < 65536 && wait(POLLIN)) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      head.append(buf, static_cast<std::size_t>(n));
    }
    if (read_bodies_) read_body(fd, head, wait);
    std::string response;
    {
      std::lock_guard lock(mutex_);
      if (!responses_.empty()) response = responses_[served_ % responses_.size()];
      ++served_;
    }
    std::size_t done = 0;
    while (done < response.size() && wait(POLLOUT)) {
      const ssize_t n = ::send(fd, response.data() + done, response.size() - done, MSG_NOSIGNAL);
      if (n <= 0) break;
      done += static_cast<std::size_t>(n);
    }
    ::shutdown(fd, SHUT_WR);
    std::lock_guard lock(mutex_);
    held_.push_back(fd);
  }

  // Reads the rest of the body whose Content-Length the head names (what came with the head counts).
  template <class Wait>
  void read_body(int fd, const std::string& head, Wait& wait) {
    const std::size_t end = head.find("\r\n\r\n");
    if (end == std::string::npos) return;
    std::string lower = head.substr(0, end);
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const std::size_t at = lower.find("\r\ncontent-length:");
    if (at == std::string::npos) return;
    const std::size_t length = std::stoul(lower.substr(at + 17));
    std::size_t got = head.size() - (end + 4);
    char buf[65536];
    while (got < length && wait(POLLIN)) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      got += static_cast<std::size_t>(n);
    }
    std::lock_guard lock(mutex_);
    body_bytes_ += got;
  }

  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::vector<std::string> responses_;
  std::size_t served_ = 0;
  std::size_t accepted_ = 0;
  std::vector<int> held_;
  std::atomic<bool> read_bodies_{false};
  std::size_t body_bytes_ = 0;
  std::thread thread_;
};

}  // namespace sluice::test
