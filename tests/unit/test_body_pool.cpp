#include <catch2/catch.hpp>

#include "../../nodes/fetch/http_loop.hpp"

using sluice::Bytes;
using sluice::fetch::BodyPool;

TEST_CASE("a body's buffer returns to the pool when its last reference goes, and is reused", "[fetch][pool]") {
  auto pool = std::make_shared<BodyPool>();
  CHECK(pool->take().capacity() < 256);  // nothing pooled yet
  std::string body(10000, 'x');
  const char* buffer = body.data();
  Bytes first = pool->share(std::move(body));
  CHECK(first.size() == 10000);
  CHECK(first.view().data() == buffer);  // moved, not copied
  Bytes second = first;
  first = Bytes();
  CHECK(pool->take().capacity() < 256);  // `second` still holds it
  second = Bytes();
  std::string reused = pool->take();
  CHECK(reused.empty());
  CHECK(reused.capacity() >= 10000);
  CHECK(reused.data() == buffer);
  CHECK(pool->take().capacity() < 256);  // taken once only
}

TEST_CASE("the body pool keeps neither tiny nor huge buffers, nor more than its bounds", "[fetch][pool]") {
  auto pool = std::make_shared<BodyPool>();
  pool->give(std::string(100, 'x'));
  pool->give(std::string(2 << 20, 'x'));  // above 1 MiB: freed
  CHECK(pool->take().capacity() < 256);
  for (int i = 0; i < 8; ++i) pool->give(std::string(1 << 20, 'x'));  // 8 MiB offered, 4 MiB kept
  int kept = 0;
  while (pool->take().capacity() >= (1 << 20)) ++kept;
  CHECK(kept == 4);
  for (int i = 0; i < 300; ++i) pool->give(std::string(1000, 'x'));  // 300 buffers offered, 256 kept
  kept = 0;
  while (pool->take().capacity() >= 1000) ++kept;
  CHECK(kept == 256);
}

TEST_CASE("bodies shared by the pool outlive it", "[fetch][pool]") {
  Bytes body;
  {
    auto pool = std::make_shared<BodyPool>();
    body = pool->share(std::string(5000, 'y'));
  }
  CHECK(body.view() == std::string(5000, 'y'));
  body = Bytes();  // the buffer goes back to a pool only this Bytes kept alive, then is freed
}
