// gen_site: writes a static site for benchmarks: N pages of about SIZE bytes under DIR/p/<n>.html,
// each linking to the next and to five random others, and DIR/urls.txt with BASE/p/<n>.html for every page.
//   gen_site DIR BASE_URL [N=20000] [SIZE=10240]
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>

int main(int argc, char** argv) {
  if (argc < 3) {
    fmt::print(stderr, "usage: gen_site DIR BASE_URL [N] [SIZE]\n");
    return 2;
  }
  std::filesystem::path dir = argv[1];
  std::string base = argv[2];
  int n = argc > 3 ? std::atoi(argv[3]) : 20000;
  std::size_t size = argc > 4 ? std::stoul(argv[4]) : 10240;
  std::filesystem::create_directories(dir / "p");
  std::mt19937 rng(7);
  std::ofstream urls(dir / "urls.txt");
  for (int i = 1; i <= n; ++i) {
    std::string page = fmt::format(
        "<!doctype html><html><head><title>Item {0}</title></head><body>\n"
        "<div class=\"product\"><h1 class=\"name\">Item {0}</h1>"
        "<span class=\"price\">{1}.{2:02}</span>\n",
        i, rng() % 500, rng() % 100);
    // Relative links (the site may live under a prefix); the chain to i+1 makes every page reachable.
    if (i < n) page += fmt::format("<a href=\"{}.html\">following</a>\n", i + 1);
    for (int k = 0; k < 5; ++k) page += fmt::format("<a href=\"{}.html\">next {}</a>\n", rng() % n + 1, k);
    while (page.size() + 30 < size) page += "<p>lorem ipsum dolor sit amet, consectetur adipiscing elit</p>\n";
    page += "</div></body></html>\n";
    std::ofstream(dir / "p" / fmt::format("{}.html", i)) << page;
    urls << base << "/p/" << i << ".html\n";
  }
  return 0;
}
