#include <catch2/catch.hpp>

#include <cmath>
#include <thread>

#include "sluice/batch.hpp"
#include "sluice/json.hpp"

using namespace sluice;

TEST_CASE("records serialize to one JSON object with every value type", "[json]") {
  Record r;
  r.set("url", "https://x.example/a?b=\"c\"");
  r.set("n", std::int64_t{42});
  r.set("ratio", 0.5);
  r.set("ok", true);
  r.set("none", nullptr);
  r.set("body", Bytes("line1\nline2\t\x01"));
  r.set("tags", List{Value("a"), Value(std::int64_t{1})});
  r.set("nan", std::nan(""));
  r.set("address", Object{{"street", Value("Main \"1\"")}, {"geo", Object{{"lat", Value(52.5)}}}, {"none", nullptr}});
  r.set("variants", List{Value(Object{{"sku", Value("k-1")}}), Value(Object{})});
  std::string out;
  append_json(out, r);
  CHECK(out == R"({"url":"https://x.example/a?b=\"c\"","n":42,"ratio":0.5,"ok":true,"none":null,)"
               R"("body":"line1\nline2\t\u0001","tags":["a",1],"nan":null,)"
               R"("address":{"street":"Main \"1\"","geo":{"lat":52.5},"none":null},"variants":[{"sku":"k-1"},{}]})");
  CHECK(r.get("address")->type_name() == "object");
  CHECK(r.get("variants")->to_text() == R"([{"sku":"k-1"},{}])");
}

TEST_CASE("invalid UTF-8 becomes U+FFFD and valid multibyte text passes through", "[json]") {
  std::string out;
  append_json_string(out, "caf\xC3\xA9 \xFF\xFE ok \xE2\x82");
  CHECK(out == "\"caf\xC3\xA9 \xEF\xBF\xBD\xEF\xBF\xBD ok \xEF\xBF\xBD\xEF\xBF\xBD\"");
}

TEST_CASE("a routed record carries its error in _error — selected fields keep their order", "[json]") {
  Record r;
  r.set("a", std::int64_t{1});
  r.set("b", std::int64_t{2});
  r.error = RecordError{"boom", "bad thing"};
  std::string out;
  append_json(out, r);
  CHECK(out == R"({"a":1,"b":2,"_error":{"node":"boom","message":"bad thing"}})");
  std::vector<std::string> only = {"b", "zz"};
  out.clear();
  append_json(out, r, &only);
  CHECK(out == R"({"b":2,"zz":null})");
}

TEST_CASE("record fields keep insertion order — set replaces in place — rename and erase", "[record]") {
  Record r;
  r.set("a", std::int64_t{1});
  r.set("b", std::int64_t{2});
  r.set("a", std::int64_t{3});
  REQUIRE(r.fields().size() == 2);
  CHECK(r.fields()[0].first == "a");
  CHECK(*r.get("a")->as_int() == 3);
  CHECK(r.rename("a", "c"));
  CHECK_FALSE(r.rename("zz", "y"));
  CHECK(r.fields().back().first == "c");
  CHECK(r.erase("b"));
  CHECK_FALSE(r.erase("b"));
  CHECK(r.describe() == "#0");
  r.set("url", "https://u");
  CHECK(r.describe() == "https://u");
}

TEST_CASE("messages hide the credentials of the URLs in them", "[record]") {
  CHECK(hide_credentials("record 'http://user:secret@h.example:8080/a?b=c@d': timeout") ==
        "record 'http://user:***@h.example:8080/a?b=c@d': timeout");
  CHECK(hide_credentials("https://ghp_t0ken@h.example/x") == "https://***@h.example/x");
  CHECK(hide_credentials("redirect from 'http://a:b@x.example' to 'ftp://c:d%40e@y.example/f'") ==
        "redirect from 'http://a:***@x.example' to 'ftp://c:***@y.example/f'");
  CHECK(hide_credentials("http://a:b@c@[::1]:80/") == "http://a:***@[::1]:80/");  // the last @ ends them
  CHECK(hide_credentials("http://user:@h/") == "http://user:***@h/");
  // Nothing to hide: no credentials, an @ in the path or query, no scheme, masked already.
  for (const char* same : {"http://h.example/a@b", "http://h.example?to=a:b@c", "mailto:a@b.example", "see ://a:b@c",
                           "http://u:***@h/", "plain text", ""}) {
    CHECK(hide_credentials(same) == same);
  }
}

TEST_CASE("bytes are shared, never copied, when a record is copied", "[record]") {
  Record r;
  r.set("body", Bytes(std::string(1 << 20, 'x')));
  Record copy = r;
  CHECK(copy.get("body")->as_bytes()->view().data() == r.get("body")->as_bytes()->view().data());
}

TEST_CASE("a gate holds capacity until every batch sharing a permit is gone", "[permit]") {
  Gate gate(2);
  auto a = gate.acquire();
  auto b = gate.acquire();
  Batch first;
  first.tickets.push_back(std::move(a));
  auto derived = first.derive();
  first.tickets.clear();
  CHECK(gate.admitted() == 2);
  CHECK(gate.released() == 0);

  std::thread waiter([&] {
    auto c = gate.acquire();
    CHECK(c != nullptr);
  });
  derived.reset();  // the last holder of permit a: frees one unit and wakes the waiter
  waiter.join();
  b.reset();
  CHECK(gate.admitted() == 3);
  CHECK(gate.released() == 3);
}

TEST_CASE("closing a gate wakes a blocked acquirer with no permit", "[permit]") {
  Gate gate(1);
  auto held = gate.acquire();
  PermitRef got = std::make_shared<const Permit>(gate);  // non-null sentinel, released below
  std::thread waiter([&] { got = gate.acquire(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  gate.close();
  waiter.join();
  CHECK(got == nullptr);
  held.reset();
  CHECK(gate.admitted() == 1);
}
