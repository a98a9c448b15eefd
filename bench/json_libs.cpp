// json_libs: the benchmark behind parse.json's choice of library. Parses an API-like payload
// (a page of 100 product objects, ~30 KB) and extracts /items/*/id, name, price the way parse.json
// does, with nlohmann-json (DOM) and simdjson (DOM with at_pointer), N times each.
//   json_libs [N=20000]
#include <fmt/format.h>
#include <simdjson.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 20000;
  std::string payload = R"({"page":1,"next":"/api/items?page=2","items":[)";
  for (int i = 0; i < 100; ++i) {
    payload += fmt::format(R"({}{{"id":{},"name":"Product number {}","price":{}.99,"tags":["kitchen","sale"],)"
                           R"("stock":{{"warehouse":"north","count":{}}},"description":"A fine product with a long )"
                           R"(description that pads the payload to something realistic."}})",
                           i ? "," : "", i, i, i % 50, i * 3);
  }
  payload += "]}";
  using Clock = std::chrono::steady_clock;
  double checksum = 0;
  auto t0 = Clock::now();
  for (int k = 0; k < n; ++k) {
    auto doc = nlohmann::json::parse(payload);
    for (const auto& item : doc.at(nlohmann::json::json_pointer("/items"))) {
      checksum += item.at("id").get<double>() + item.at("price").get<double>();
      checksum += static_cast<double>(item.at("name").get_ref<const std::string&>().size());
    }
  }
  auto t1 = Clock::now();
  simdjson::dom::parser parser;
  simdjson::padded_string padded(payload);
  for (int k = 0; k < n; ++k) {
    simdjson::dom::element doc = parser.parse(padded);
    for (simdjson::dom::element item : doc.at_pointer("/items").get_array()) {
      checksum += static_cast<double>(int64_t(item["id"])) + double(item["price"]);
      checksum += static_cast<double>(std::string_view(item["name"]).size());
    }
  }
  auto t2 = Clock::now();
  auto per = [&](auto a, auto b) { return std::chrono::duration<double, std::micro>(b - a).count() / n; };
  fmt::print("payload {} bytes, {} runs (checksum {})\n", payload.size(), n, checksum);
  fmt::print("nlohmann-json {:8.1f} us/payload {:8.0f} MB/s\n", per(t0, t1), payload.size() / per(t0, t1));
  fmt::print("simdjson      {:8.1f} us/payload {:8.0f} MB/s\n", per(t1, t2), payload.size() / per(t1, t2));
  return 0;
}
