#include "selector.hpp"

#include <fmt/format.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <mutex>
#include <new>
#include <vector>

#include "../text.hpp"

namespace sluice::parse {
namespace {

// An XPath string literal for `s` (concat() when it holds both quote kinds).
std::string literal(std::string_view s) {
  if (s.find('\'') == std::string_view::npos) return fmt::format("'{}'", s);
  if (s.find('"') == std::string_view::npos) return fmt::format("\"{}\"", s);
  std::string out = "concat(";
  std::size_t start = 0;
  while (true) {
    auto q = s.find('\'', start);
    out += fmt::format("'{}'", s.substr(start, q == std::string_view::npos ? std::string_view::npos : q - start));
    if (q == std::string_view::npos) break;
    out += ", \"'\", ";
    start = q + 1;
  }
  return out + ")";
}

bool name_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
}

void ignore_generic_error(void*, const char*, ...) {}

// Tag and attribute names become XPath names, which cannot start with a digit or '-'.
bool name_start(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_';
}

// libxml2's own verdict on an XPath expression: compiled, then evaluated once on an empty HTML
// document (which also catches unknown functions and wrong argument types). Its message goes to
// `error` instead of libxml2's default of printing it on stderr.
bool libxml_accepts(const std::string& xpath, std::string& error) {
  struct Capture {
    static void on_error(void* user, xmlErrorPtr e) {
      auto* c = static_cast<Capture*>(user);
      if (c->message.empty() && e) c->message = xpath_error_text(e);
    }
    std::string message;
  } capture;
  init_libxml();
  xmlDocPtr doc = xmlNewDoc(reinterpret_cast<const xmlChar*>("1.0"));
  if (!doc) throw std::bad_alloc();
  xmlDocSetRootElement(doc, xmlNewDocNode(doc, nullptr, reinterpret_cast<const xmlChar*>("html"), nullptr));
  xmlXPathContextPtr ctx = xmlXPathNewContext(doc);
  if (!ctx) {
    xmlFreeDoc(doc);
    throw std::bad_alloc();
  }
  ctx->userData = &capture;
  ctx->error = &Capture::on_error;
  bool ok = false;
  if (xmlXPathCompExprPtr expr = xmlXPathCtxtCompile(ctx, reinterpret_cast<const xmlChar*>(xpath.c_str()))) {
    ctx->node = reinterpret_cast<xmlNodePtr>(doc);
    xmlXPathObjectPtr result = xmlXPathCompiledEval(expr, ctx);
    ok = result != nullptr && capture.message.empty();
    xmlXPathFreeObject(result);
    xmlXPathFreeCompExpr(expr);
  }
  xmlXPathFreeContext(ctx);
  xmlFreeDoc(doc);
  if (!ok) error = capture.message.empty() ? "not a valid expression" : capture.message;
  return ok;
}

class CssParser {
 public:
  CssParser(std::string_view text, std::string* error) : s_(text), error_(error) {}

  // One selector of a list: compound (combinator compound)*, then an optional pseudo-element.
  std::optional<std::string> selector(bool relative, Selector& out) {
    std::string xpath = relative ? "./" : "/";
    bool first = true;
    char combinator = ' ';
    while (true) {
      skip_space();
      if (at_end() || peek() == ',') break;
      if (s_.substr(pos_, 2) == "::") return pseudo_element(xpath, out);
      if (peek() == '>' || peek() == '+' || peek() == '~') {
        if (first) return fail(fmt::format("'{}' needs an element before it", peek()));
        combinator = peek();
        ++pos_;
        continue;
      }
      auto compound = this->compound();
      if (!compound) return std::nullopt;
      if (first || combinator == ' ') {
        xpath += "/descendant-or-self::*/";
      } else if (combinator == '>') {
        xpath += "/";
      } else if (combinator == '+') {
        xpath += "/following-sibling::*[1]/self::";  // the next element, if it matches
      } else {
        xpath += "/following-sibling::";  // '~': any later sibling that matches
      }
      xpath += *compound;
      first = false;
      combinator = ' ';
      std::size_t before = pos_;
      skip_space();
      if (!at_end() && std::string_view(",>+~").find(peek()) == std::string_view::npos && s_.substr(pos_, 2) != "::" &&
          pos_ == before) {
        return fail(fmt::format("unexpected '{}'", peek()));
      }
    }
    if (first) return fail("empty selector");
    if (combinator != ' ') return fail(fmt::format("expected an element after '{}'", combinator));
    return simplify(xpath);
  }

  bool at_end() const { return pos_ >= s_.size(); }
  char peek() const { return s_[pos_]; }
  void skip_space() {
    while (!at_end() && std::isspace(static_cast<unsigned char>(peek()))) ++pos_;
  }
  bool take(char c) {
    if (!at_end() && peek() == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  std::optional<std::string> fail(std::string message) {
    if (error_) *error_ = fmt::format("{} at offset {} in CSS selector '{}'", message, pos_, s_);
    return std::nullopt;
  }

 private:
  static std::string simplify(std::string xpath) {
    // "/descendant-or-self::*/x" after a leading "/" or "./" reads better as "//x" or ".//x".
    const std::string long_form = "/descendant-or-self::*/";
    for (std::size_t at; (at = xpath.find(long_form)) != std::string::npos;) xpath.replace(at, long_form.size(), "//");
    if (xpath.starts_with("///")) xpath.erase(0, 1);
    if (xpath.starts_with(".///")) xpath.erase(1, 1);
    return xpath;
  }

  std::string name() {
    std::size_t start = pos_;
    while (!at_end() && name_char(peek())) ++pos_;
    return std::string(s_.substr(start, pos_ - start));
  }

  std::optional<std::string> value() {
    skip_space();
    if (!at_end() && (peek() == '"' || peek() == '\'')) {
      char q = peek();
      std::size_t start = ++pos_;
      while (!at_end() && peek() != q) ++pos_;
      if (at_end()) return fail("unterminated string");
      std::string v(s_.substr(start, pos_ - start));
      ++pos_;
      return v;
    }
    std::string v = name();
    if (v.empty()) return fail("expected a value");
    return v;
  }

  std::optional<std::string> compound() {
    std::string tag = "*";
    std::string predicates;
    if (take('*')) {
    } else if (!at_end() && name_char(peek())) {
      if (!name_start(peek())) return fail(fmt::format("a tag name cannot start with '{}'", peek()));
      // HTML's element names are lower case (the parser makes them so), an XML document's keep
      // their case: RSS's pubDate matches either way.
      const std::string written = name();
      const std::string lower = nodes::to_lower(written);
      tag = written == lower ? lower : fmt::format("*[self::{} or self::{}]", written, lower);
    }
    bool any = tag != "*" || (pos_ > 0 && s_[pos_ - 1] == '*');
    while (!at_end()) {
      if (take('.')) {
        std::string cls = name();
        if (cls.empty()) return fail("expected a class name");
        predicates +=
            fmt::format("[contains(concat(' ', normalize-space(@class), ' '), {})]", literal(" " + cls + " "));
      } else if (take('#')) {
        std::string id = name();
        if (id.empty()) return fail("expected an id");
        predicates += fmt::format("[@id={}]", literal(id));
      } else if (take('[')) {
        skip_space();
        if (!at_end() && name_char(peek()) && !name_start(peek())) {
          return fail(fmt::format("an attribute name cannot start with '{}'", peek()));
        }
        std::string written = name();
        if (written.empty()) return fail("expected an attribute name");
        // As with tags: HTML's attribute names are lower case, an XML document's keep their case.
        const std::string lower = nodes::to_lower(written);
        const std::string attr = written == lower ? "@" + lower : fmt::format("(@{}|@{})", written, lower);
        skip_space();
        if (take(']')) {
          predicates += fmt::format("[{}]", attr);
        } else {
          std::string op;
          for (std::string_view candidate : {"^=", "$=", "*=", "~=", "|=", "="}) {
            if (s_.substr(pos_, candidate.size()) == candidate) {
              op.append(candidate);
              pos_ += op.size();
              break;
            }
          }
          if (op.empty()) return fail("expected ], =, ^=, $=, *=, ~= or |=");
          auto v = value();
          if (!v) return std::nullopt;
          skip_space();
          if (!take(']')) return fail("expected ]");
          std::string lit = literal(*v);
          if (op == "=") predicates += fmt::format("[{}={}]", attr, lit);
          if (op == "^=") predicates += fmt::format("[starts-with({}, {})]", attr, lit);
          if (op == "*=") predicates += fmt::format("[contains({}, {})]", attr, lit);
          if (op == "~=") {  // one of its space-separated words
            predicates +=
                fmt::format("[contains(concat(' ', normalize-space({}), ' '), {})]", attr, literal(" " + *v + " "));
          }
          if (op == "|=") predicates += fmt::format("[{0}={1} or starts-with({0}, {2})]", attr, lit, literal(*v + "-"));
          if (op == "$=") {
            predicates += fmt::format("[substring({0}, string-length({0}) - string-length({1}) + 1) = {1}]", attr, lit);
          }
        }
      } else if (s_.substr(pos_, 2) != "::" && take(':')) {
        std::string pseudo = name();
        if (pseudo == "first-child") {
          predicates += "[not(preceding-sibling::*)]";
        } else if (pseudo == "last-child") {
          predicates += "[not(following-sibling::*)]";
        } else if (pseudo == "first-of-type") {
          predicates += fmt::format("[not(preceding-sibling::{})]", tag);
        } else if (pseudo == "last-of-type") {
          predicates += fmt::format("[not(following-sibling::{})]", tag);
        } else if (pseudo == "nth-child" || pseudo == "nth-of-type") {
          // Browsers' "copy selector" writes :nth-child(3); lists stripe with odd and even.
          const std::string siblings = pseudo == "nth-child" ? "*" : tag;
          if (!take('(')) return fail(fmt::format("expected ( after :{}", pseudo));
          std::string n = name();
          long index = 0;
          auto [end, ec] = std::from_chars(n.data(), n.data() + n.size(), index);
          if (n == "odd" || n == "even") {
            if (!take(')')) return fail(fmt::format("expected :{}(<number from 1>, odd or even)", pseudo));
            predicates += fmt::format("[count(preceding-sibling::{}) mod 2 = {}]", siblings, n == "odd" ? 0 : 1);
          } else if (!take(')') || n.empty() || ec != std::errc() || end != n.data() + n.size() || index < 1 ||
                     index > 1'000'000) {
            return fail(fmt::format("expected :{}(<number from 1>, odd or even)", pseudo));
          } else {
            predicates += fmt::format("[count(preceding-sibling::{}) = {}]", siblings, index - 1);
          }
        } else if (pseudo == "not") {
          if (!take('(')) return fail("expected ( after :not");
          skip_space();
          auto inner = compound();
          if (!inner) return std::nullopt;
          skip_space();
          if (!take(')')) return fail("expected ) after the selector in :not(");
          predicates += fmt::format("[not(self::{})]", *inner);
        } else {
          return fail(fmt::format("unsupported pseudo-class ':{}'", pseudo));
        }
      } else {
        break;
      }
      any = true;
    }
    if (!any) return fail("expected a tag, *, .class, #id or [attribute]");
    return tag + predicates;
  }

  std::optional<std::string> pseudo_element(const std::string& xpath, Selector& out) {
    pos_ += 2;
    std::string what = name();
    if (what == "text") {
      out.pick = Selector::Pick::own_text;
    } else if (what == "attr") {
      if (!take('(')) return fail("expected ( after ::attr");
      out.attribute = name();
      if (out.attribute.empty() || !take(')')) return fail("expected ::attr(<name>)");
      out.pick = Selector::Pick::attribute;
    } else {
      return fail(fmt::format("unsupported pseudo-element '::{}'", what));
    }
    skip_space();
    if (!at_end() && peek() != ',') return fail("::text and ::attr() must end the selector");
    if (xpath == "./" || xpath == "/") return fail("::text and ::attr() need an element before them");
    return simplify(xpath);
  }

  std::string_view s_;
  std::size_t pos_ = 0;
  std::string* error_;
};

}  // namespace

std::string xpath_error_text(const ::_xmlError* e) {
  // xmlXPathErrorMessages of libxml2 2.9.14, by xmlXPathError code; the structured error that an
  // XPath context's handler receives carries the code and the offset, not the text.
  static constexpr const char* kMessages[] = {
      "ok",
      "bad number",
      "unfinished literal",
      "bad start of literal",
      "expected $ for a variable reference",
      "undefined variable",
      "invalid predicate",
      "invalid expression",
      "missing closing curly brace",
      "unknown function",
      "invalid operand",
      "invalid type",
      "wrong number of arguments",
      "invalid context size",
      "invalid context position",
      "out of memory",
      "syntax error",
      "resource error",
      "sub-resource error",
      "undefined namespace prefix",
      "encoding error",
      "character out of XML range",
      "invalid or incomplete context",
      "stack usage error",
      "forbidden variable",
      "operation limit exceeded",
      "recursion limit exceeded",
  };
  const int code = e->domain == XML_FROM_XPATH ? e->code - XML_XPATH_EXPRESSION_OK : -1;
  std::string text = code >= 0 && code < static_cast<int>(std::size(kMessages)) ? kMessages[code]
                     : e->message                                               ? e->message
                                                                                : fmt::format("error {}", e->code);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  if (e->int1 > 0) text += fmt::format(" at offset {}", e->int1);
  return text;
}

void init_libxml() {
  static std::once_flag ready;
  std::call_once(ready, [] { xmlInitParser(); });
  // Messages libxml2 would print on stderr besides its structured errors ("xmlXPathCompOpEval:
  // function f not found"): the handler is per thread, and sluice reports the structured errors.
  thread_local const bool quiet = [] {
    xmlSetGenericErrorFunc(nullptr, ignore_generic_error);
    return true;
  }();
  (void)quiet;
}

namespace {
// Untagged XPath starts with '/', '(' or a '.' step ('.', './a', './/a', '..'); a '.' before a name
// is a CSS class ('.price', '.tags li'), which no XPath expression starts with.
bool looks_like_xpath(std::string_view text) {
  if (text.starts_with("/") || text.starts_with("(")) return true;
  if (!text.starts_with(".")) return false;
  const unsigned char next = text.size() > 1 ? static_cast<unsigned char>(text[1]) : 0;
  return !(std::isalpha(next) || next == '_' || next == '-' || next == '\\' || next >= 0x80);
}
}  // namespace

std::optional<Selector> compile_selector(std::string_view text, bool relative, std::string* error) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
  Selector out;
  const bool is_xpath = text.starts_with("xpath:") || (!text.starts_with("css:") && looks_like_xpath(text));
  if (is_xpath) {
    out.xpath = std::string(text.starts_with("xpath:") ? text.substr(6) : text);
    std::string problem;
    if (!libxml_accepts(out.xpath, problem)) {
      if (error) *error = fmt::format("invalid XPath '{}': {}", out.xpath, problem);
      return std::nullopt;
    }
    return out;
  }
  if (text.starts_with("css:")) text.remove_prefix(4);
  if (text.empty()) {
    if (error) *error = "empty selector";
    return std::nullopt;
  }
  CssParser parser(text, error);
  std::vector<std::string> alternatives;
  Selector::Pick pick = Selector::Pick::string_value;
  std::string attribute;
  while (true) {
    Selector one;
    auto xpath = parser.selector(relative, one);
    if (!xpath) return std::nullopt;
    if (!alternatives.empty() && (one.pick != pick || one.attribute != attribute)) {
      if (error) *error = fmt::format("all selectors of the list '{}' must end the same way (::text / ::attr)", text);
      return std::nullopt;
    }
    pick = one.pick;
    attribute = one.attribute;
    alternatives.push_back(*xpath);
    parser.skip_space();
    if (parser.at_end()) break;
    if (!parser.take(',')) {
      parser.fail("expected ,");
      return std::nullopt;
    }
  }
  for (std::size_t i = 0; i < alternatives.size(); ++i) out.xpath += (i ? " | " : "") + alternatives[i];
  out.pick = pick;
  out.attribute = attribute;
  if (const std::string lower = nodes::to_lower(attribute); lower != attribute) out.attribute_lower = lower;
  std::string problem;
  if (!libxml_accepts(out.xpath, problem)) {  // a gap in the translation above, reported rather than run
    if (error)
      *error = fmt::format("CSS selector '{}' translates to XPath '{}', which libxml2 refuses: {}", text, out.xpath,
                           problem);
    return std::nullopt;
  }
  return out;
}

}  // namespace sluice::parse
