// The names of downloaded files (what a server calls the file it sends), and the temporary files
// a download is written to until it is whole.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <set>

#include "../../nodes/core/file_names.hpp"
#include "../support.hpp"

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

namespace {

// Sets a file's modification time `age` into the past.
void age_file(const std::string& path, std::chrono::hours age) {
  const auto when = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now() - age);
  const timespec times[2] = {{when, 0}, {when, 0}};
  REQUIRE(::utimensat(AT_FDCWD, path.c_str(), times, 0) == 0);
}

}  // namespace

TEST_CASE("resumable files: one transfer at a time has one, and a later one continues it", "[names]") {
  using sluice::nodes::PartFiles;
  sluice::test::TempDir dir;
  const std::string folder = dir.file("files");
  const std::string url = "https://files.example/big.iso";
  const std::string key = "0123456789abcdef";
  PartFiles files;
  std::string temp;
  const int fd = files.open_resumable(folder, key, url, "\"v1\"", temp);
  REQUIRE(fd >= 0);
  CHECK(temp == folder + "/.sluice-" + key + ".part");
  CHECK(sluice::test::read_file(temp + ".meta") == "sluice download 1\n" + url + "\n\"v1\"\n");
  REQUIRE(PartFiles::write_all(fd, "first bytes", 11) == 0);
  // Held: neither another transfer's new file nor a later run's adoption takes it (another
  // PartFiles: another run in the same folder).
  PartFiles other;
  std::string temp2;
  CHECK(other.open_resumable(folder, key, url, "\"v1\"", temp2) == -1);
  CHECK_FALSE(other.adopt(folder, key, url, 1 << 20));
  CHECK(sluice::test::read_file(temp) == "first bytes");
  ::close(fd);  // the run ends (or is killed): the lock goes with it, the file stays

  auto found = other.adopt(folder, key, url, 1 << 20);
  REQUIRE(found);
  CHECK(found->size == 11);
  CHECK(found->version == "\"v1\"");
  CHECK(found->temp == temp);
  REQUIRE(PartFiles::write_all(found->fd, " and the rest", 13) == 0);  // written at its end
  CHECK(sluice::test::read_file(temp) == "first bytes and the rest");
  CHECK_FALSE(files.adopt(folder, key, url, 1 << 20));  // held by the adopter now
  // Another version came: the meta says so; none named: the file can no longer be continued.
  PartFiles::set_version(temp, url, "Tue, 01 Dec 2026 10:00:00 GMT");
  CHECK(sluice::test::read_file(temp + ".meta") == "sluice download 1\n" + url + "\nTue, 01 Dec 2026 10:00:00 GMT\n");
  PartFiles::set_version(temp, url, "");
  CHECK_FALSE(std::filesystem::exists(temp + ".meta"));
  ::close(found->fd);
  // Without its meta the file is nobody's to continue: the next adopter removes it.
  CHECK_FALSE(files.adopt(folder, key, url, 1 << 20));
  CHECK_FALSE(std::filesystem::exists(temp));

  SECTION("a file for another URL, cut-short meta, an empty file or one over the size cap is removed") {
    for (const std::string& meta :
         std::vector<std::string>{"sluice download 1\nhttps://other.example/x\n\"v1\"\n", "sluice download 1\n" + url,
                                  "sluice download 1\n" + url + "\n\n", "something else\n"}) {
      sluice::test::write_file(temp, "bytes");
      sluice::test::write_file(temp + ".meta", meta);
      INFO(meta);
      CHECK_FALSE(files.adopt(folder, key, url, 1 << 20));
      CHECK_FALSE(std::filesystem::exists(temp));
      CHECK_FALSE(std::filesystem::exists(temp + ".meta"));
    }
    for (const std::string& bytes : {std::string(), std::string(101, 'x')}) {
      sluice::test::write_file(temp, bytes);
      sluice::test::write_file(temp + ".meta", "sluice download 1\n" + url + "\n\"v1\"\n");
      CHECK_FALSE(files.adopt(folder, key, url, 100));
      CHECK_FALSE(std::filesystem::exists(temp));
    }
    sluice::test::write_file(temp, std::string(100, 'x'));
    sluice::test::write_file(temp + ".meta", "sluice download 1\n" + url + "\n\"v1\"\n");
    auto exact = files.adopt(folder, key, url, 100);
    REQUIRE(exact);
    CHECK(exact->size == 100);
    ::close(exact->fd);
  }
  SECTION("removing the file (given up on) removes its meta too") {
    sluice::test::write_file(temp, "bytes");
    sluice::test::write_file(temp + ".meta", "x");
    PartFiles::remove_temp(temp, true);
    CHECK(std::filesystem::is_empty(folder));
  }
}

TEST_CASE("resumable files nobody continued for a week are removed the first time a run uses their folder", "[names]") {
  using sluice::nodes::PartFiles;
  sluice::test::TempDir dir;
  const std::string folder = dir.file("files");
  std::filesystem::create_directories(folder);
  auto make = [&](const std::string& name, std::chrono::hours age) {
    sluice::test::write_file(folder + "/" + name, "x");
    age_file(folder + "/" + name, age);
  };
  using std::chrono::hours;
  make(".sluice-000000000000000a.part", hours(24 * 8));  // a week old, with its meta: removed with it
  make(".sluice-000000000000000a.part.meta", hours(24 * 8));
  make(".sluice-000000000000000b.part", hours(24 * 6));  // six days: kept for a later run
  make(".sluice-000000000000000b.part.meta", hours(24 * 6));
  make(".sluice-000000000000000c.part", hours(2));       // no meta (cannot be continued), 2 hours: removed
  make(".sluice-000000000000000d.part.meta", hours(2));  // a meta whose file is gone: removed
  make(".sluice-000000000000000e.part.meta", hours(0));  // ... unless just written
  make(".sluice-000000000000000f.part", hours(24 * 8));  // held by a transfer: kept
  make(".sluice-000000000000000f.part.meta", hours(24 * 8));
  make(".sluice-0000000000000g.part", hours(24 * 8));  // not a key: not sluice's
  const int held = ::open((folder + "/.sluice-000000000000000f.part").c_str(), O_RDONLY);
  REQUIRE(held >= 0);
  REQUIRE(::flock(held, LOCK_EX) == 0);
  PartFiles files;
  std::string error;
  REQUIRE(files.make_dirs(folder, error));
  ::close(held);
  std::set<std::string> left;
  for (const auto& e : std::filesystem::directory_iterator(folder)) left.insert(e.path().filename().string());
  CHECK(left == std::set<std::string>{".sluice-000000000000000b.part", ".sluice-000000000000000b.part.meta",
                                      ".sluice-000000000000000e.part.meta", ".sluice-000000000000000f.part",
                                      ".sluice-000000000000000f.part.meta", ".sluice-0000000000000g.part"});
  CHECK(files.stale_removed() == 2);  // the .part files
}
