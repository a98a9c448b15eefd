// The frontier's queues by host: which URL goes out next decides whether one slow site can hold a
// crawl of many sites, and a URL lost or repeated on its way through the spill file is a page not
// crawled or crawled twice. Checked against a model of the rule over random operations.
#include <catch2/catch.hpp>

#include <deque>
#include <filesystem>
#include <map>
#include <random>

#include "../../nodes/crawl/host_queues.hpp"
#include "../support.hpp"
#include "sluice/node.hpp"

using sluice::nodes::HostQueues;
using sluice::nodes::Parked;
using sluice::test::TempDir;

namespace {

Parked url(const std::string& host, int n) {
  return Parked{"http://" + host + "/" + std::to_string(n), "http://" + host + "/", 1, n % 3 ? "" : R"({"n":1})"};
}

std::size_t spill_files(const std::filesystem::path& dir) {
  std::size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    n += e.path().filename().string().starts_with("sluice-frontier-");
  return n;
}

}  // namespace

TEST_CASE("hosts take turns: the one with the fewest URLs out first, then the one served longest ago", "[frontier]") {
  TempDir dir;
  HostQueues q(100, 0, dir.path().string());
  for (int i = 0; i < 6; ++i) q.push("a", url("a", i));
  q.push("b", url("b", 0));
  q.push("b", url("b", 1));
  q.push("c", url("c", 0));
  std::string order;
  std::vector<std::uint32_t> out;
  while (auto next = q.pop()) {
    order += next->url.url.substr(7, 1);
    out.push_back(next->host);
  }
  // Nothing comes back: a, b and c once each, b and a again, then a alone.
  CHECK(order == "abcabaaaa");
  CHECK(q.size() == 0);
  CHECK(q.hosts() == 3);  // each has URLs out
  for (std::uint32_t h : out) q.done(h);
  CHECK(q.hosts() == 0);

  // A host whose URLs come back quickly gets the next turn over one whose URLs stay out.
  for (int i = 0; i < 4; ++i) {
    q.push("slow", url("slow", i));
    q.push("fast", url("fast", i));
  }
  auto first = q.pop();
  auto second = q.pop();
  REQUIRE((first && second));
  CHECK(first->url.url == "http://slow/0");  // neither served yet: the first pushed
  CHECK(second->url.url == "http://fast/0");
  q.done(second->host);
  CHECK(q.pop()->url.url == "http://fast/1");  // fast has none out, slow one
  CHECK(q.pop()->url.url == "http://slow/1");  // one out each: slow was served longer ago
}

TEST_CASE("per_host caps the URLs of one host out at a time, and done() opens it again", "[frontier]") {
  TempDir dir;
  HostQueues q(100, 2, dir.path().string());
  for (int i = 0; i < 5; ++i) q.push("slow", url("slow", i));
  auto a = q.pop();
  auto b = q.pop();
  REQUIRE((a && b));
  CHECK_FALSE(q.ready());
  CHECK_FALSE(q.pop());
  q.push("other", url("other", 0));  // another host is not held up by it
  CHECK(q.ready());
  CHECK(q.pop()->url.url == "http://other/0");
  CHECK_FALSE(q.pop());
  q.done(a->host);
  CHECK(q.pop()->url.url == "http://slow/2");
  CHECK(q.size() == 2);

  // clear() drops what is parked; URLs out stay counted until done.
  q.clear();
  CHECK(q.size() == 0);
  CHECK_FALSE(q.ready());
  CHECK(q.hosts() == 2);
  q.done(b->host);
  q.done(b->host);
  CHECK(q.hosts() == 1);  // other's URL is still out
}

TEST_CASE("URLs go out as the rule says and in their host's order, through the spill file, over random operations",
          "[frontier]") {
  TempDir dir;
  std::mt19937 rng(11);
  for (const std::size_t memory : {1u, 7u, 1000u}) {
    for (const std::size_t cap : {0u, 1u, 3u}) {
      CAPTURE(memory, cap);
      HostQueues q(memory, cap, dir.path().string());
      // The model: each host's parked URLs in order, its URLs out, and the turn it was last served.
      std::map<std::string, std::deque<std::string>> parked;
      std::map<std::string, std::size_t> out;
      std::map<std::string, std::uint64_t> served;
      std::vector<std::pair<std::string, std::uint32_t>> taken;  // URLs out: host name, host id
      std::uint64_t turn = 0;
      int next_url = 0;
      auto idle = [&](const std::string& h) {
        if (parked[h].empty() && out[h] == 0) served.erase(h);
      };
      for (int step = 0; step < 6000; ++step) {
        const int op = static_cast<int>(rng() % 10);
        if (op < 5) {
          // Few hosts most of the time, a long tail of others.
          const std::string host = rng() % 4 ? "h" + std::to_string(rng() % 5) : "t" + std::to_string(rng() % 40);
          Parked p = url(host, next_url++);
          parked[host].push_back(p.url);
          q.push(host, std::move(p));
        } else if (op < 8) {
          std::optional<std::pair<std::size_t, std::uint64_t>> best;
          for (const auto& [h, urls] : parked) {
            if (urls.empty() || (cap && out[h] >= cap)) continue;
            const std::pair<std::size_t, std::uint64_t> k{out[h], served.count(h) ? served[h] : 0};
            if (!best || k < *best) best = k;
          }
          auto next = q.pop();
          REQUIRE(next.has_value() == best.has_value());
          if (!next) continue;
          const std::string host = next->url.url.substr(7, next->url.url.find('/', 7) - 7);
          CAPTURE(host, next->url.url);
          REQUIRE(!parked[host].empty());
          CHECK(next->url.url == parked[host].front());
          CHECK(std::pair<std::size_t, std::uint64_t>{out[host], served.count(host) ? served[host] : 0} == *best);
          CHECK(next->url.fields == url(host, std::stoi(next->url.url.substr(next->url.url.rfind('/') + 1))).fields);
          parked[host].pop_front();
          ++out[host];
          served[host] = ++turn;
          taken.emplace_back(host, next->host);
        } else if (!taken.empty()) {
          const std::size_t i = rng() % taken.size();
          const auto [host, id] = taken[i];
          taken.erase(taken.begin() + static_cast<std::ptrdiff_t>(i));
          q.done(id);
          --out[host];
          idle(host);
        }
        std::size_t total = 0, known = 0;
        for (const auto& [h, urls] : parked) {
          total += urls.size();
          known += !urls.empty() || out[h] > 0;
        }
        REQUIRE(q.size() == total);
        REQUIRE(q.hosts() == known);
        REQUIRE(q.in_memory() <= memory + 1);
      }
      // Drain: every URL comes out once.
      for (auto& [host, id] : taken) q.done(id);
      std::size_t drained = 0;
      while (auto next = q.pop()) {
        ++drained;
        q.done(next->host);
      }
      std::size_t total = 0;
      for (const auto& [h, urls] : parked) total += urls.size();
      CHECK(drained == total);
      CHECK(q.hosts() == 0);
    }
  }
  CHECK(spill_files(dir.path()) == 0);  // each queue's spill file went with it
}

TEST_CASE("a spill file that cannot be written is an error naming it, not a lost URL", "[frontier]") {
  TempDir dir;
  HostQueues q(1, 0, dir.file("missing"));
  q.push("a", url("a", 0));  // in memory
  try {
    q.push("a", url("a", 1));
    FAIL("no error");
  } catch (const sluice::NodeError& e) {
    CHECK_THAT(e.what(), Catch::Matchers::StartsWith("spill file '" + dir.file("missing") + "/sluice-frontier-"));
    CHECK_THAT(e.what(), Catch::Matchers::Contains("unable to open database file"));
  }
  CHECK(q.size() == 1);
  CHECK(q.pop()->url.url == "http://a/0");
}
