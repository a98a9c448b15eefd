#include <catch2/catch.hpp>

#include <random>

#include "sluice/json.hpp"

#include "../../nodes/parse/charset.hpp"

using namespace sluice::parse;

namespace {

// "日本語" in Shift_JIS and in UTF-8.
const std::string kSjis = "\x93\xfa\x96\x7b\x8c\xea";
const std::string kJapanese = "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e";

std::string fffd(int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += "\xef\xbf\xbd";  // U+FFFD
  return out;
}

std::string decoded(const std::string& body, const std::string& content_type = "") {
  return std::string(decode_page(body, content_type).text());
}

}  // namespace

TEST_CASE("charset_param reads the charset of a Content-Type", "[parse][charset]") {
  CHECK(charset_param("text/html; charset=utf-8") == "utf-8");
  CHECK(charset_param("text/html;CHARSET=\"Shift_JIS\"") == "Shift_JIS");
  CHECK(charset_param("text/html; q=1; charset = 'koi8-r' ; x=y") == "koi8-r");
  CHECK(charset_param("text/html") == "");
  CHECK(charset_param("text/html; charsets=x") == "");
  CHECK(charset_param("") == "");
}

TEST_CASE("labels map to the encodings the HTML standard reads them as", "[parse][charset]") {
  CHECK(encoding_for_label("ISO-8859-1") == "windows-1252");
  CHECK(encoding_for_label(" us-ascii ") == "windows-1252");
  CHECK(encoding_for_label("GB2312") == "GB18030");
  CHECK(encoding_for_label("Shift_JIS") == "CP932");
  CHECK(encoding_for_label("EUC-KR") == "CP949");
  CHECK(encoding_for_label("UTF8") == "UTF-8");
  CHECK(encoding_for_label("KOI8-R") == "koi8-r");  // iconv's own name
}

TEST_CASE("a page is decoded by BOM, then Content-Type charset, then <meta>, then UTF-8 or windows-1252",
          "[parse][charset]") {
  SECTION("valid UTF-8 is passed on as it is, without a copy; libxml2 may read it undirected if it is ASCII") {
    const std::string body = "<p>caf\xc3\xa9</p>";
    PageText in = decode_page(body, "text/html");
    CHECK(in.text().data() == body.data());
    CHECK_FALSE(in.converted);
    // Undirected, libxml2 reads "é" as ISO-8859-1 ("Ã©"), also under a <meta charset=utf-8> that
    // comes after it.
    CHECK_FALSE(in.as_is);
    CHECK_FALSE(decode_page(body, "text/html; charset=utf-8").as_is);
    CHECK_FALSE(decode_page("<title>\xc3\xa9</title><meta charset=utf-8>", "").as_is);
    CHECK(decode_page("<meta charset=utf-8><p>x</p>", "").as_is);
    CHECK(decode_page("<p>x</p>", "text/html; charset=utf-8").as_is);
  }
  SECTION("libxml2 is told the encoding when the text was decoded or a <meta> says otherwise") {
    CHECK_FALSE(decode_page("<meta charset=iso-2022-jp><p>$B$3(B</p>", "").as_is);
    CHECK_FALSE(decode_page("<p>caf\xe9</p>", "").as_is);
    CHECK_FALSE(decode_page("\xEF\xBB\xBF<p>x</p>", "").as_is);
    CHECK_FALSE(decode_page("<meta charset=iso-8859-1><p>x</p>", "text/html; charset=utf-8").as_is);
    CHECK_FALSE(decode_page("<meta charset=utf-16><p>x</p>", "").as_is);
  }
  SECTION("an XML declaration's encoding, for feeds and sitemaps (they have no <meta>)") {
    const std::string feed = "<rss><title>" + std::string("\xcf\xf0\xe8\xe2\xe5\xf2") + "</title></rss>";
    const std::string russian = "<rss><title>\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82</title></rss>";
    const std::string decl = "<?xml version=\"1.0\" encoding=\"windows-1251\"?>";
    CHECK(decoded(decl + feed, "application/rss+xml") == decl + russian);
    CHECK(decoded("\n  <?xml version='1.0' encoding = 'CP1251' ?>" + feed, "") ==
          "\n  <?xml version='1.0' encoding = 'CP1251' ?>" + russian);
    CHECK_FALSE(decode_page(decl + "<rss/>", "").as_is);  // libxml2's HTML parser ignores the declaration
    // Not at the start, or without an encoding: no declaration (windows-1252 for a body not UTF-8).
    CHECK(decoded("<rss><?xml encoding=\"windows-1251\"?>\xe9</rss>", "") ==
          "<rss><?xml encoding=\"windows-1251\"?>\xc3\xa9</rss>");
    CHECK(decoded("<?xml version=\"1.0\"?><a>\xe9</a>", "") == "<?xml version=\"1.0\"?><a>\xc3\xa9</a>");
  }
  SECTION("the Content-Type's charset") {
    CHECK(decoded("<h1>" + kSjis + "</h1>", "text/html; charset=shift_jis") == "<h1>" + kJapanese + "</h1>");
    CHECK(decoded("\xf0\xd2\xc9\xd7\xc5\xd4", "text/html; charset=KOI8-R") ==
          "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82");  // Привет
  }
  SECTION("the Content-Type's charset wins over the page's <meta>") {
    CHECK(decoded("<meta charset=\"koi8-r\"><h1>" + kSjis + "</h1>", "text/html; charset=Shift_JIS") ==
          "<meta charset=\"koi8-r\"><h1>" + kJapanese + "</h1>");
  }
  SECTION("<meta charset> and <meta http-equiv content=...charset=...> when the Content-Type has none") {
    CHECK(decoded("<html><head><META charset='Shift_JIS'/></head>" + kSjis, "text/html") ==
          "<html><head><META charset='Shift_JIS'/></head>" + kJapanese);
    CHECK(decoded("<meta http-equiv=\"Content-Type\" content=\"text/html; charset=shift_jis\">" + kSjis) ==
          "<meta http-equiv=\"Content-Type\" content=\"text/html; charset=shift_jis\">" + kJapanese);
  }
  SECTION("a byte order mark wins over everything, and is dropped") {
    CHECK(decoded("\xEF\xBB\xBF<p>caf\xc3\xa9</p>", "text/html; charset=iso-8859-1") == "<p>caf\xc3\xa9</p>");
    CHECK(decoded(std::string("\xFF\xFE<\0p\0>\0", 8), "text/html; charset=shift_jis") == "<p>");
  }
  SECTION("undeclared and not UTF-8: windows-1252, smart quotes and euro sign included") {
    CHECK(decoded("\x93quoted\x94 \x80"
                  "5 caf\xe9") ==
          "\xe2\x80\x9cquoted\xe2\x80\x9d \xe2\x82\xac"
          "5 caf\xc3\xa9");
  }
  SECTION("iso-8859-1 is read as windows-1252; the five bytes windows-1252 leaves undefined stay C1 controls") {
    CHECK(decoded("\x93\x81", "text/html; charset=ISO-8859-1") == "\xe2\x80\x9c\xc2\x81");
  }
  SECTION("a byte that does not decode becomes U+FFFD and the rest of the page is kept") {
    CHECK(decoded("<h1>\x85\x40" + kSjis + "</h1><p>end</p>", "text/html; charset=shift_jis") ==
          "<h1>\xef\xbf\xbd@" + kJapanese + "</h1><p>end</p>");
    CHECK(decoded("<p>bad \xff\xfe ok \xc3\xa9</p>", "text/html; charset=utf-8") ==
          "<p>bad \xef\xbf\xbd\xef\xbf\xbd ok \xc3\xa9</p>");
    CHECK(decoded("<p>cut " + kSjis.substr(0, 5), "text/html; charset=shift_jis") ==
          "<p>cut \xe6\x97\xa5\xe6\x9c\xac\xef\xbf\xbd");
  }
  SECTION("what is not well-formed UTF-8 is replaced byte by byte: 5-byte forms, beyond U+10FFFF, surrogates") {
    CHECK(decoded("a\xfa\x89\x94\xa9\xad"
                  "b\xf4\x9f\x96\xa4"
                  "c\xed\xa0\x80",
                  "text/html; charset=utf-8") == "a" + fffd(5) + "b" + fffd(4) + "c" + fffd(3));
  }
  SECTION("an unknown charset is ignored: <meta> or the content decides") {
    CHECK(decoded("<p>caf\xc3\xa9</p>", "text/html; charset=no-such-thing") == "<p>caf\xc3\xa9</p>");
    CHECK(decoded("<p>caf\xe9</p>", "text/html; charset=no-such-thing") == "<p>caf\xc3\xa9</p>");
  }
  SECTION("a header that says UTF-8 for a body that is not gives way to the page's <meta>") {
    CHECK(decoded("<meta charset=\"iso-8859-1\"><p>caf\xe9</p>", "text/html; charset=utf-8") ==
          "<meta charset=\"iso-8859-1\"><p>caf\xc3\xa9</p>");
  }
  SECTION("undeclared UTF-8 with a broken byte stays UTF-8") {
    CHECK(decoded("<p>\xe6\x97\xa5\xe6\x9c\xac \xff caf\xc3\xa9</p>") ==
          "<p>\xe6\x97\xa5\xe6\x9c\xac \xef\xbf\xbd caf\xc3\xa9</p>");
  }
  SECTION("a page cannot declare itself UTF-16 in its <meta>: it is read as UTF-8") {
    CHECK(decoded("<meta charset=utf-16><p>caf\xc3\xa9</p>") == "<meta charset=utf-16><p>caf\xc3\xa9</p>");
  }
}

TEST_CASE("whatever the bytes and the declared charset, the text is well-formed UTF-8", "[parse][charset]") {
  std::mt19937 rng(20261202);
  const char* labels[] = {"",    "utf-8", "shift_jis", "iso-2022-jp", "utf-7",    "utf-16", "utf-16be",
                          "gbk", "big5",  "euc-jp",    "koi8-r",      "nonsense", "UTF-32", "ucs-2"};
  const char* heads[] = {
      "",        "<meta charset=utf-16>", "<meta charset='iso-2022-jp'>", "<meta charset=", "\xEF\xBB\xBF", "\xFF\xFE",
      "\xFE\xFF"};
  for (int i = 0; i < 20000; ++i) {
    std::string body = heads[rng() % std::size(heads)];
    const auto n = rng() % 200;
    for (unsigned k = 0; k < n; ++k) body += static_cast<char>(rng() % 4 ? 0x80 + rng() % 0x80 : rng() % 0x80);
    const std::string type = std::string("text/html; charset=") + labels[rng() % std::size(labels)];
    const std::string text = decoded(body, rng() % 3 ? type : "");
    std::size_t k = 0;
    while (k < text.size() && sluice::utf8_sequence(text, k) > 0) k += sluice::utf8_sequence(text, k);
    CAPTURE(i, type);
    REQUIRE(k == text.size());
  }
}
