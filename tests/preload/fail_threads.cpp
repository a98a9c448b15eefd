// LD_PRELOAD library for tests: pthread_create() starts FAIL_THREADS_AFTER threads, then refuses
// every other one with EAGAIN, as the system does at a limit of threads or memory (ulimit -u, -v,
// a container's pids.max). Unset, it changes nothing.
#include <dlfcn.h>
#include <pthread.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>

namespace {
std::atomic<long> started{0};
}  // namespace

extern "C" int pthread_create(pthread_t* thread, const pthread_attr_t* attr, void* (*body)(void*), void* arg) {
  using Create = int (*)(pthread_t*, const pthread_attr_t*, void* (*)(void*), void*);
  static const auto real = reinterpret_cast<Create>(::dlsym(RTLD_NEXT, "pthread_create"));
  static const char* limit = std::getenv("FAIL_THREADS_AFTER");
  if (limit && started.fetch_add(1) >= std::atol(limit)) return EAGAIN;
  return real(thread, attr, body, arg);
}
