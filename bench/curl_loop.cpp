// curl_loop: the reference for the fetch benchmark, the limit of this stack: one thread, one
// libcurl multi handle, CONCURRENCY transfers in flight over keep-alive connections, bodies kept
// in memory until the transfer ends (as sluice does), then dropped.
//   curl_loop URLS_FILE CONCURRENCY [fresh]
// By default a finished handle is reset and reused for the next transfer, which is the fastest way
// and the reference of the targets. On libcurl 7.88 that reuse is not safe against any server: a
// response whose first header line is folded makes libcurl write through a pointer into the
// previous transfer's freed headers (curl issue #11101, fixed in 8.1). `fresh` makes each transfer
// a copy of a template handle (curl_easy_duphandle) and cleans it up when done, as sluice must.
#include <curl/curl.h>
#include <fmt/format.h>

#include <fstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

struct Transfer {
  std::string body;
};

std::size_t on_body(char* data, std::size_t size, std::size_t count, void* user) {
  static_cast<Transfer*>(user)->body.append(data, size * count);
  return size * count;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3 || (argc > 3 && std::string_view(argv[3]) != "fresh")) {
    fmt::print(stderr, "usage: curl_loop URLS_FILE CONCURRENCY [fresh]\n");
    return 2;
  }
  const bool fresh = argc > 3;
  std::vector<std::string> urls;
  std::ifstream in(argv[1]);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) urls.push_back(line);
  }
  const int concurrency = std::atoi(argv[2]);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  CURLM* multi = curl_multi_init();
  std::vector<CURL*> idle;
  std::size_t next = 0, ok = 0, failed = 0, bytes = 0;
  int running = 0;
  auto set_options = [](CURL* e) {
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
  };
  CURL* model = nullptr;  // the template of fresh handles
  if (fresh) {
    model = curl_easy_init();
    set_options(model);
  }
  auto add = [&] {
    CURL* e;
    if (fresh) {
      e = curl_easy_duphandle(model);
    } else if (idle.empty()) {
      e = curl_easy_init();
      set_options(e);
    } else {
      e = idle.back();
      idle.pop_back();
      curl_easy_reset(e);
      set_options(e);
    }
    auto* t = new Transfer;
    curl_easy_setopt(e, CURLOPT_URL, urls[next++].c_str());
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(e, CURLOPT_PRIVATE, t);
    curl_multi_add_handle(multi, e);
    ++running;
  };
  while (next < urls.size() && running < concurrency) add();
  while (running > 0) {
    int still = 0;
    curl_multi_perform(multi, &still);
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      CURL* e = msg->easy_handle;
      Transfer* t = nullptr;
      long status = 0;
      curl_easy_getinfo(e, CURLINFO_PRIVATE, &t);
      curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
      (msg->data.result == CURLE_OK && status == 200 ? ok : failed)++;
      bytes += t->body.size();
      delete t;
      curl_multi_remove_handle(multi, e);
      if (fresh) {
        curl_easy_cleanup(e);
      } else {
        idle.push_back(e);
      }
      --running;
      if (next < urls.size()) add();
    }
    if (running > 0) curl_multi_poll(multi, nullptr, 0, 1000, nullptr);
  }
  for (CURL* e : idle) curl_easy_cleanup(e);
  if (model != nullptr) curl_easy_cleanup(model);
  curl_multi_cleanup(multi);
  fmt::print("ok {} failed {} bytes {}\n", ok, failed, bytes);
  return failed == 0 ? 0 : 1;
}
