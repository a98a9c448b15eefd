// e2e_loop: the reference for the end-to-end benchmark, on one thread: a libcurl multi loop with
// CONCURRENCY transfers in flight; each page is parsed with libxml2 as it completes, its
// div.product name and price extracted with XPath, and the rows inserted into SQLite in
// transactions of 1000 rows (WAL, synchronous=NORMAL).
//   e2e_loop URLS_FILE DB CONCURRENCY
#include <curl/curl.h>
#include <fmt/format.h>
#include <libxml/HTMLparser.h>
#include <libxml/xpath.h>
#include <sqlite3.h>

#include <fstream>
#include <string>
#include <vector>

namespace {

struct Transfer {
  std::string url;
  std::string body;
};

std::size_t on_body(char* data, std::size_t size, std::size_t count, void* user) {
  static_cast<Transfer*>(user)->body.append(data, size * count);
  return size * count;
}

std::string text(xmlXPathContextPtr ctx, const char* xpath, xmlNodePtr node) {
  ctx->node = node;
  xmlXPathObjectPtr r = xmlXPathEvalExpression(reinterpret_cast<const xmlChar*>(xpath), ctx);
  std::string out;
  if (r) {
    xmlChar* s = xmlXPathCastToString(r);
    out = reinterpret_cast<const char*>(s);
    xmlFree(s);
    xmlXPathFreeObject(r);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    fmt::print(stderr, "usage: e2e_loop URLS_FILE DB CONCURRENCY\n");
    return 2;
  }
  std::vector<std::string> urls;
  std::ifstream in(argv[1]);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) urls.push_back(line);
  }
  const int concurrency = std::atoi(argv[3]);
  xmlInitParser();
  curl_global_init(CURL_GLOBAL_DEFAULT);
  sqlite3* db = nullptr;
  sqlite3_open(argv[2], &db);
  sqlite3_exec(db,
               "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
               "CREATE TABLE items (url TEXT, name TEXT, price TEXT)",
               nullptr, nullptr, nullptr);
  sqlite3_stmt* insert = nullptr;
  sqlite3_prepare_v2(db, "INSERT INTO items VALUES (?, ?, ?)", -1, &insert, nullptr);
  long rows_in_txn = 0, rows = 0;
  CURLM* multi = curl_multi_init();
  std::size_t next = 0;
  int running = 0;
  auto add = [&] {
    CURL* e = curl_easy_init();
    auto* t = new Transfer{urls[next++], {}};
    curl_easy_setopt(e, CURLOPT_URL, t->url.c_str());
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(e, CURLOPT_PRIVATE, t);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
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
      curl_easy_getinfo(e, CURLINFO_PRIVATE, &t);
      htmlDocPtr doc = htmlReadMemory(t->body.data(), static_cast<int>(t->body.size()), t->url.c_str(), nullptr,
                                      HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING);
      if (doc) {
        xmlXPathContextPtr ctx = xmlXPathNewContext(doc);
        xmlXPathObjectPtr items = xmlXPathEvalExpression(
            reinterpret_cast<const xmlChar*>("//div[contains(concat(' ', normalize-space(@class), ' '), ' product ')]"),
            ctx);
        if (items && items->nodesetval) {
          for (int i = 0; i < items->nodesetval->nodeNr; ++i) {
            xmlNodePtr item = items->nodesetval->nodeTab[i];
            std::string name = text(ctx, "string(.//h1)", item);
            std::string price = text(ctx, "string(.//span)", item);
            if (rows_in_txn == 0) sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
            sqlite3_bind_text(insert, 1, t->url.data(), static_cast<int>(t->url.size()), SQLITE_TRANSIENT);
            sqlite3_bind_text(insert, 2, name.data(), static_cast<int>(name.size()), SQLITE_TRANSIENT);
            sqlite3_bind_text(insert, 3, price.data(), static_cast<int>(price.size()), SQLITE_TRANSIENT);
            sqlite3_step(insert);
            sqlite3_reset(insert);
            ++rows;
            if (++rows_in_txn == 1000) {
              sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
              rows_in_txn = 0;
            }
          }
        }
        xmlXPathFreeObject(items);
        xmlXPathFreeContext(ctx);
        xmlFreeDoc(doc);
      }
      delete t;
      curl_multi_remove_handle(multi, e);
      curl_easy_cleanup(e);
      --running;
      if (next < urls.size()) add();
    }
    if (running > 0) curl_multi_poll(multi, nullptr, 0, 1000, nullptr);
  }
  if (rows_in_txn) sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
  sqlite3_finalize(insert);
  sqlite3_close(db);
  curl_multi_cleanup(multi);
  fmt::print("rows {}\n", rows);
  return 0;
}
