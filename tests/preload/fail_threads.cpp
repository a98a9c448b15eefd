// LD_PRELOAD library for tests: pthread_create() starts FAIL_THREADS_AFTER threads, then refuses
// every other one with EAGAIN, as the system does at a limit of threads or memory (ulimit -u, -v,
// a container's pids.max). With THREAD_START_DELAY_MS, each thread that starts waits that long
// before it runs its body, as on a loaded machine that schedules a new thread late: what its
// creator does meanwhile (ending at once, stopping it) must not depend on the thread having run.
// Unset, they change nothing.
#include <dlfcn.h>
#include <pthread.h>
#include <time.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>

namespace {
std::atomic<long> started{0};

struct Start {
  void* (*body)(void*);
  void* arg;
  long delay_ms;
};

void* start_late(void* p) {
  const Start s = *static_cast<Start*>(p);
  delete static_cast<Start*>(p);
  timespec wait{s.delay_ms / 1000, (s.delay_ms % 1000) * 1000000};
  while (::nanosleep(&wait, &wait) != 0 && errno == EINTR) {
  }
  return s.body(s.arg);
}
}  // namespace

extern "C" int pthread_create(pthread_t* thread, const pthread_attr_t* attr, void* (*body)(void*), void* arg) {
  using Create = int (*)(pthread_t*, const pthread_attr_t*, void* (*)(void*), void*);
  static const auto real = reinterpret_cast<Create>(::dlsym(RTLD_NEXT, "pthread_create"));
  static const char* limit = std::getenv("FAIL_THREADS_AFTER");
  static const char* delay = std::getenv("THREAD_START_DELAY_MS");
  if (limit && started.fetch_add(1) >= std::atol(limit)) return EAGAIN;
  if (!delay || std::atol(delay) <= 0) return real(thread, attr, body, arg);
  auto* start = new Start{body, arg, std::atol(delay)};
  const int code = real(thread, attr, start_late, start);
  if (code != 0) delete start;
  return code;
}
