// The names of downloaded files: what a server calls the file it sends.
#include <catch2/catch.hpp>

#include "../../nodes/core/file_names.hpp"

using sluice::nodes::served_name;

TEST_CASE("served_name: the Content-Disposition's file name, else the URL's last segment, made a safe name",
          "[names]") {
  const char* url = "https://files.example/get?id=7";
  CHECK(served_name(R"(attachment; filename="Annual Report 2025.pdf")", url) == "Annual Report 2025.pdf");
  CHECK(served_name("inline; filename=report.pdf", url) == "report.pdf");
  CHECK(served_name("attachment;filename=report.pdf;size=100", url) == "report.pdf");
  // filename* (RFC 8187) comes first: UTF-8 and ISO-8859-1, percent-encoded.
  CHECK(served_name(R"(attachment; filename*=UTF-8''na%C3%AFve%20file.txt; filename="naive file.txt")", url) ==
        "na\xC3\xAFve file.txt");
  CHECK(served_name(R"(attachment; filename="naive file.txt"; filename*=utf-8''na%C3%AFve.txt)", url) ==
        "na\xC3\xAFve.txt");
  CHECK(served_name("attachment; filename*=iso-8859-1'en'%E9t%E9.csv", url) == "\xC3\xA9t\xC3\xA9.csv");
  // An unknown charset is not guessed: the plain filename, else the URL.
  CHECK(served_name("attachment; filename*=koi8-r''%C1.txt; filename=a.txt", url) == "a.txt");
  // The server's text is untrusted: no path, no hidden file, no characters file systems refuse.
  CHECK(served_name(R"(attachment; filename="../../etc/passwd")", url) == "passwd");
  CHECK(served_name(R"(attachment; filename="C:\\temp\\x.exe")", url) == "x.exe");
  CHECK(served_name(R"(attachment; filename=".bashrc")", url) == "_bashrc");
  CHECK(served_name(R"(attachment; filename="a \"quoted\" name?.txt")", url) == "a _quoted_ name_.txt");
  CHECK(served_name("attachment; filename*=UTF-8''%2E%2E%2Fx%00y", url) == "x_y");
  // No name given: the URL's last path segment, decoded; else "download".
  CHECK(served_name("", "https://x.example/files/My%20Doc.pdf?sig=1#p2") == "My Doc.pdf");
  CHECK(served_name("attachment", "https://x.example/a/b") == "b");
  CHECK(served_name("", "https://x.example/") == "download");
  CHECK(served_name("", "https://x.example") == "download");
  CHECK(served_name("", "https://x.example/%2E%2E") == "_.");
}
