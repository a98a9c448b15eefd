#include <catch2/catch.hpp>

#include "../../nodes/parse/selector.hpp"

using sluice::parse::compile_selector;
using sluice::parse::Selector;

namespace {
std::string xpath(const char* css, bool relative = false) {
  std::string error;
  auto s = compile_selector(css, relative, &error);
  return s ? s->xpath : "error: " + error;
}
}  // namespace

TEST_CASE("CSS selectors translate to XPath", "[parse][selector]") {
  CHECK(xpath("div") == "//div");
  CHECK(xpath("div", true) == ".//div");
  CHECK(xpath("div.product") == "//div[contains(concat(' ', normalize-space(@class), ' '), ' product ')]");
  CHECK(xpath("#main") == "//*[@id='main']");
  CHECK(xpath("a[href]") == "//a[@href]");
  CHECK(xpath("a[rel=next]") == "//a[@rel='next']");
  CHECK(xpath("a[href^='http']") == "//a[starts-with(@href, 'http')]");
  CHECK(xpath("a[href*=shop]") == "//a[contains(@href, 'shop')]");
  CHECK(xpath("ul > li") == "//ul/li");
  CHECK(xpath("div li") == "//div//li");
  CHECK(xpath("li:nth-child(2)") == "//li[count(preceding-sibling::*) = 1]");
  CHECK(xpath("li:first-child") == "//li[not(preceding-sibling::*)]");
  CHECK(xpath("h1, h2") == "//h1 | //h2");
  // Sibling combinators, :not(), :nth-of-type, odd/even, and the ~= and |= attribute operators.
  CHECK(xpath("h2 + p") == "//h2/following-sibling::*[1]/self::p");
  CHECK(xpath("h2 ~ p") == "//h2/following-sibling::p");
  CHECK(xpath("li:not(.ad)") == "//li[not(self::*[contains(concat(' ', normalize-space(@class), ' '), ' ad ')])]");
  CHECK(xpath("p:nth-of-type(2)") == "//p[count(preceding-sibling::p) = 1]");
  CHECK(xpath("p:first-of-type") == "//p[not(preceding-sibling::p)]");
  CHECK(xpath("tr:nth-child(odd)") == "//tr[count(preceding-sibling::*) mod 2 = 0]");
  CHECK(xpath("a[rel~=next]") == "//a[contains(concat(' ', normalize-space(@rel), ' '), ' next ')]");
  CHECK(xpath("[lang|=en]") == "//*[@lang='en' or starts-with(@lang, 'en-')]");
  CHECK(xpath("//div[@id='x']") == "//div[@id='x']");
  // A leading '.' is an XPath step only before '/', '.' or nothing; before a name it is a CSS class.
  CHECK(xpath(".price", true) == ".//*[contains(concat(' ', normalize-space(@class), ' '), ' price ')]");
  CHECK(xpath(".tags li", true) == ".//*[contains(concat(' ', normalize-space(@class), ' '), ' tags ')]//li");
  CHECK(xpath("._x") == "//*[contains(concat(' ', normalize-space(@class), ' '), ' _x ')]");
  CHECK(xpath("./a") == "./a");
  CHECK(xpath(".//a") == ".//a");
  CHECK(xpath("..") == "..");
  CHECK(xpath(".") == ".");
  CHECK(xpath("xpath:count(//a)") == "count(//a)");
  // A tag in mixed case matches HTML's lower-case names and an XML document's own (RSS's pubDate).
  CHECK(xpath("DIV") == "//*[self::DIV or self::div]");
  CHECK(xpath("item pubDate", true) == ".//item//*[self::pubDate or self::pubdate]");
  CHECK(xpath("a[data-ID]") == "//a[(@data-ID|@data-id)]");
  CHECK(xpath("guid[isPermaLink=false]") == "//guid[(@isPermaLink|@ispermalink)='false']");
  CHECK(xpath("a[href^=http]") == "//a[starts-with(@href, 'http')]");
  CHECK(xpath("pubDate:first-of-type") ==
        "//*[self::pubDate or self::pubdate][not(preceding-sibling::*[self::pubDate or self::pubdate])]");
}

TEST_CASE("::text and ::attr() pick what a CSS selector returns", "[parse][selector]") {
  auto text = compile_selector("h2.name::text", true, nullptr);
  REQUIRE(text);
  CHECK(text->pick == Selector::Pick::own_text);
  auto attr = compile_selector("a.more::attr(href)", false, nullptr);
  REQUIRE(attr);
  CHECK(attr->pick == Selector::Pick::attribute);
  CHECK(attr->attribute == "href");
  CHECK(attr->attribute_lower.empty());
  CHECK(attr->xpath == "//a[contains(concat(' ', normalize-space(@class), ' '), ' more ')]");
  // A name in mixed case is tried as written (XML), then in lower case (an HTML parser's).
  auto mixed = compile_selector("img::attr(dataSrc)", true, nullptr);
  REQUIRE(mixed);
  CHECK(mixed->attribute == "dataSrc");
  CHECK(mixed->attribute_lower == "datasrc");
}

TEST_CASE("bad CSS selectors are errors that say where", "[parse][selector]") {
  CHECK(xpath("div[") == "error: expected an attribute name at offset 4 in CSS selector 'div['");
  CHECK(xpath("li:hover") == "error: unsupported pseudo-class ':hover' at offset 8 in CSS selector 'li:hover'");
  CHECK(xpath("a::attr(") == "error: expected ::attr(<name>) at offset 8 in CSS selector 'a::attr('");
  CHECK(xpath("") == "error: empty selector");
  // XPath names cannot start with a digit: "1.5" is not a tag "1" with a class "5".
  CHECK(xpath("1.5") == "error: a tag name cannot start with '1' at offset 0 in CSS selector '1.5'");
  CHECK(xpath("h1, 2") == "error: a tag name cannot start with '2' at offset 4 in CSS selector 'h1, 2'");
  CHECK(xpath("a[-x]") == "error: an attribute name cannot start with '-' at offset 2 in CSS selector 'a[-x]'");
  CHECK(xpath("li:nth-child(99999999999)") ==
        "error: expected :nth-child(<number from 1>, odd or even) at offset 25 in CSS selector "
        "'li:nth-child(99999999999)'");
  CHECK(xpath("li:nth-child(0)") ==
        "error: expected :nth-child(<number from 1>, odd or even) at offset 15 in CSS selector 'li:nth-child(0)'");
  CHECK(xpath("+ li") == "error: '+' needs an element before it at offset 0 in CSS selector '+ li'");
  CHECK(xpath("h2 ~") == "error: expected an element after '~' at offset 4 in CSS selector 'h2 ~'");
  CHECK(xpath("ul >, p") == "error: expected an element after '>' at offset 4 in CSS selector 'ul >, p'");
  CHECK(xpath("li:not(") ==
        "error: expected a tag, *, .class, #id or [attribute] at offset 7 in CSS selector 'li:not('");
  CHECK(xpath("li:not(.a b)") ==
        "error: expected ) after the selector in :not( at offset 10 in CSS selector 'li:not(.a b)'");
}

TEST_CASE("XPath selectors are checked by libxml2 itself, with its reason and offset", "[parse][selector]") {
  CHECK(xpath("//a[") == "error: invalid XPath '//a[': invalid expression at offset 4");
  CHECK(xpath(R"(//a[@href="x])") == R"(error: invalid XPath '//a[@href="x]': unfinished literal at offset 13)");
  CHECK(xpath("xpath:count(1)") == "error: invalid XPath 'count(1)': invalid type");
  CHECK(xpath("xpath:no-such-function(//a)") == "error: invalid XPath 'no-such-function(//a)': unknown function");
  CHECK(xpath("xpath:$page") == "error: invalid XPath '$page': undefined variable");
  CHECK(xpath("xpath:string(//title)") == "string(//title)");
  CHECK(xpath("(//a)[1]") == "(//a)[1]");
}
