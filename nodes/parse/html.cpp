// parse.html: extracts items and fields from HTML pages with libxml2's recovering HTML parser and
// XPath 1.0 (CSS selectors are translated), and emits the page's links.
#include <fmt/format.h>
#include <libxml/HTMLparser.h>
#include <libxml/xpath.h>
#include <re2/re2.h>
#include <tbb/enumerable_thread_specific.h>

#include <algorithm>
#include <map>
#include <memory>
#include <optional>

#include "../builtin.hpp"
#include "../text.hpp"
#include "charset.hpp"
#include "field_type.hpp"
#include "gzip.hpp"
#include "links.hpp"
#include "selector.hpp"
#include "selector_stats.hpp"

namespace sluice::nodes {
namespace {

using parse::Selector;

struct FieldRule {
  std::string name;
  std::vector<Selector> selectors;  // `select`, then its `fallback`s: the first that gives a value wins
  std::vector<std::string> selector_texts;
  parse::FieldSources sources;
  bool all = false;
  bool required = false;
  bool url = false;  // resolved against the page, as links are
  std::shared_ptr<const RE2> regex;
  std::shared_ptr<parse::TypedField> typed;  // type: number, integer or date
};

// Compiled XPath expressions are per thread (libxml2 objects are not shared between threads).
class CompiledCache {
 public:
  CompiledCache() { parse::init_libxml(); }  // the thread's first use of libxml2
  xmlXPathCompExprPtr get(xmlXPathContextPtr ctx, const std::string& xpath) {
    auto it = cache_.find(xpath);
    if (it != cache_.end()) return it->second.get();
    xmlXPathCompExprPtr compiled = xmlXPathCtxtCompile(ctx, reinterpret_cast<const xmlChar*>(xpath.c_str()));
    cache_.emplace(xpath, Ptr(compiled));
    return compiled;
  }

 private:
  struct Free {
    void operator()(xmlXPathCompExprPtr p) const { xmlXPathFreeCompExpr(p); }
  };
  using Ptr = std::unique_ptr<xmlXPathCompExpr, Free>;
  std::map<std::string, Ptr> cache_;
};

// A parser context per thread, reused from page to page (htmlCtxtReadMemory resets it): its
// dictionary of element and attribute names is built once instead of for every page, which makes a
// page's parse about 8% cheaper. The dictionary only grows with names never seen before; past
// kMaxNames the context is replaced, so that pages full of made-up names cannot grow it for ever.
class ParserContext {
 public:
  htmlDocPtr read(std::string_view text, const char* url, const char* encoding, int options) {
    if (ctxt_ && xmlDictSize(ctxt_->dict) > kMaxNames) ctxt_.reset();
    if (!ctxt_) ctxt_.reset(htmlNewParserCtxt());
    if (!ctxt_) return nullptr;
    return htmlCtxtReadMemory(ctxt_.get(), text.data(), static_cast<int>(text.size()), url, encoding, options);
  }

 private:
  static constexpr int kMaxNames = 50'000;
  struct Free {
    void operator()(htmlParserCtxtPtr p) const { htmlFreeParserCtxt(p); }
  };
  std::unique_ptr<htmlParserCtxt, Free> ctxt_;
};

// libxml2's structured error handler for a page's XPath context: keeps the first message (in the
// std::string at userData) instead of printing it on stderr. The selectors were checked by
// libxml2 at validation, so this is for what only a real page can trigger.
void keep_first_error(void* user, xmlErrorPtr e) {
  auto* first = static_cast<std::string*>(user);
  if (first->empty() && e) *first = parse::xpath_error_text(e);
}

std::string collapse(std::string_view s) {
  std::string out;
  bool space = false;
  for (char c : s) {
    if (std::isspace(static_cast<unsigned char>(c))) {
      space = !out.empty();
    } else {
      if (space) out.push_back(' ');
      space = false;
      out.push_back(c);
    }
  }
  return out;
}

std::string xml_string(xmlChar* s) {
  std::string out = s ? reinterpret_cast<const char*>(s) : "";
  xmlFree(s);
  return out;
}

// A page's budget of selector steps (nodes visited by XPath and by string values): a flat page of
// N bytes takes a few steps per byte for its items and their fields; one whose items nest inside
// each other, thousands deep, takes steps in the cube of its size (a 28 KB page, minutes).
constexpr unsigned long kStepsPerPage = 20'000'000;
constexpr unsigned long kStepsPerByte = 500;

// Whether the page's budget of selector steps is spent.
bool spent(const xmlXPathContext* ctx) {
  return ctx->opLimit != 0 && ctx->opCount >= ctx->opLimit;
}

// XPath's string value of `node` (all the text below it, in document order), walked here instead
// of by libxml2 so that every node visited counts against the page's budget (ctx->opCount): on a
// page of elements nested thousands deep each item's value is most of the page. Stops, short, when
// the budget is spent.
std::string string_value(xmlNodePtr node, xmlXPathContextPtr ctx) {
  if (node->type != XML_ELEMENT_NODE && node->type != XML_DOCUMENT_NODE && node->type != XML_HTML_DOCUMENT_NODE &&
      node->type != XML_DOCUMENT_FRAG_NODE) {
    return xml_string(xmlXPathCastNodeToString(node));  // an attribute, text, comment: no subtree to walk
  }
  std::string out;
  xmlNodePtr n = node->children;
  while (n && !spent(ctx)) {
    ++ctx->opCount;
    if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) {
      if (n->content) out += reinterpret_cast<const char*>(n->content);
    } else if (n->type == XML_ENTITY_REF_NODE) {
      out += xml_string(xmlNodeGetContent(n));
    } else if (n->type == XML_ELEMENT_NODE && n->children) {
      n = n->children;
      continue;
    }
    while (n && !n->next && n != node) n = n->parent;
    if (!n || n == node) break;
    n = n->next;
  }
  return out;
}

std::string node_value(xmlNodePtr node, const Selector& sel, xmlXPathContextPtr ctx) {
  switch (sel.pick) {
    case Selector::Pick::attribute: {
      xmlChar* value = xmlGetProp(node, reinterpret_cast<const xmlChar*>(sel.attribute.c_str()));
      if (!value && !sel.attribute_lower.empty()) {
        // ::attr(dataSrc) on an HTML page, whose parser wrote the name in lower case
        value = xmlGetProp(node, reinterpret_cast<const xmlChar*>(sel.attribute_lower.c_str()));
      }
      return collapse(xml_string(value));
    }
    case Selector::Pick::own_text: {
      std::string text;
      for (xmlNodePtr c = node->children; c; c = c->next) {
        if (c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) {
          text += reinterpret_cast<const char*>(c->content ? c->content : reinterpret_cast<const xmlChar*>(""));
        }
      }
      return collapse(text);
    }
    case Selector::Pick::string_value:
      return collapse(string_value(node, ctx));
  }
  return "";
}

// Evaluates `sel` at `context`: every value (all) or the first, as strings.
std::vector<std::string> evaluate(xmlXPathContextPtr ctx, CompiledCache& cache, xmlNodePtr context, const Selector& sel,
                                  bool all) {
  std::vector<std::string> out;
  xmlXPathCompExprPtr expr = cache.get(ctx, sel.xpath);
  if (!expr) return out;
  ctx->node = context;
  xmlXPathObjectPtr result = xmlXPathCompiledEval(expr, ctx);
  if (!result) return out;
  if (result->type == XPATH_NODESET) {
    if (!xmlXPathNodeSetIsEmpty(result->nodesetval)) {
      for (int i = 0; i < result->nodesetval->nodeNr; ++i) {
        out.push_back(node_value(result->nodesetval->nodeTab[i], sel, ctx));
        if (!all) break;
      }
    }
  } else {
    out.push_back(collapse(xml_string(xmlXPathCastToString(result))));
  }
  xmlXPathFreeObject(result);
  return out;
}

std::vector<xmlNodePtr> nodes(xmlXPathContextPtr ctx, CompiledCache& cache, xmlNodePtr context, const Selector& sel) {
  std::vector<xmlNodePtr> out;
  xmlXPathCompExprPtr expr = cache.get(ctx, sel.xpath);
  if (!expr) return out;
  ctx->node = context;
  xmlXPathObjectPtr result = xmlXPathCompiledEval(expr, ctx);
  if (result && result->type == XPATH_NODESET && !xmlXPathNodeSetIsEmpty(result->nodesetval)) {
    for (int i = 0; i < result->nodesetval->nodeNr; ++i) out.push_back(result->nodesetval->nodeTab[i]);
  }
  xmlXPathFreeObject(result);
  return out;
}

// `text` with the references that are not XML made XML, or nullopt when it has none (most
// documents: one scan for '&'). Feeds are often not well-formed this way, and libxml2's XML parser
// dropped what it could not read: "AT&T" became "AT", "?a=1&b=2" "?a=1=2". A bare '&' becomes
// "&amp;", an HTML entity XML does not define ("&nbsp;", "&eacute;") its character, and an unknown
// name is kept as text. CDATA sections and comments are left as they are; a document with its own
// <!ENTITY declarations is left whole.
std::optional<std::string> repair_xml_references(std::string_view text) {
  if (text.find('&') == std::string_view::npos || text.find("<!ENTITY") != std::string_view::npos) return std::nullopt;
  auto name_char = [](char c, bool first) {
    return std::isalpha(static_cast<unsigned char>(c)) || c == '_' ||
           (!first && (std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == '-'));
  };
  std::string out;
  std::size_t copied = 0;
  bool changed = false;
  for (std::size_t i = 0; i < text.size();) {
    if (text[i] == '<' && (text.compare(i, 9, "<![CDATA[") == 0 || text.compare(i, 4, "<!--") == 0)) {
      const bool cdata = text[i + 2] == '[';
      const std::size_t end = text.find(cdata ? "]]>" : "-->", i);
      if (end == std::string_view::npos) break;
      i = end + 3;
      continue;
    }
    if (text[i] != '&') {
      i = std::min(text.find_first_of("&<", i + 1), text.size());
      continue;
    }
    std::size_t j = i + 1;
    std::string replacement;
    if (j < text.size() && text[j] == '#') {
      const bool hex = j + 1 < text.size() && (text[j + 1] == 'x' || text[j + 1] == 'X');
      std::size_t k = j + (hex ? 2 : 1);
      while (k < text.size() && (hex ? std::isxdigit(static_cast<unsigned char>(text[k]))
                                     : std::isdigit(static_cast<unsigned char>(text[k]))))
        ++k;
      if (k > j + (hex ? 2 : 1) && k < text.size() && text[k] == ';') {
        i = k + 1;  // a character reference
        continue;
      }
      replacement = "&amp;";
    } else {
      std::size_t k = j;
      while (k < text.size() && name_char(text[k], k == j)) ++k;
      const std::string_view name = text.substr(j, k - j);
      if (!name.empty() && k < text.size() && text[k] == ';') {
        if (name == "amp" || name == "lt" || name == "gt" || name == "quot" || name == "apos") {
          i = k + 1;
          continue;
        }
        const std::string key(name);
        if (const htmlEntityDesc* e = htmlEntityLookup(reinterpret_cast<const xmlChar*>(key.c_str()))) {
          parse::append_utf8(replacement, e->value);
          out.append(text.substr(copied, i - copied)).append(replacement);
          copied = i = k + 1;
          changed = true;
          continue;
        }
      }
      replacement = "&amp;";
    }
    out.append(text.substr(copied, i - copied)).append(replacement);
    copied = i = j;  // the text after '&' stays
    changed = true;
  }
  if (!changed) return std::nullopt;
  out.append(text.substr(copied));
  return out;
}

class HtmlParser final : public TransformNode {
 public:
  HtmlParser(const NodeContext& ctx, std::optional<Selector> items, std::vector<FieldRule> fields,
             std::optional<Selector> links)
      : body_field_(ctx.config.string("body_field")),
        url_field_(ctx.config.string("url_field")),
        items_(std::move(items)),
        fields_(std::move(fields)),
        links_(std::move(links)),
        keep_(parse::keep_of(ctx.config)),
        resolves_(std::any_of(fields_.begin(), fields_.end(), [](const FieldRule& f) { return f.url; })),
        stats_(ctx, "links", selectors(fields_)),
        notice_(ctx.notice) {}

  void finish() override {
    stats_.finish();
    for (const FieldRule& f : fields_) {
      if (f.typed) f.typed->say(f.name, notice_);
    }
  }

  void process(Record& page, Emitter& out) override {
    std::string page_url = parse::page_url_of(page, url_field_);
    // A PDF or an image that a crawl reached through a link with no telling extension is not parsed
    // as HTML (libxml2 would make up a page of its bytes).
    std::string type = text_of(page.get("content_type"));
    std::string media = media_type(type);
    // A gzip file (a sitemap.xml.gz served as application/gzip, without Content-Encoding): its
    // content is the document, typed by what it is unless the response said text or XML.
    std::string error;
    const std::optional<std::string> unzipped = parse::unzip_body(parse::body_text(page, body_field_), page_url, error);
    if (!error.empty()) {
      out.fail(std::move(page), std::move(error));
      return;
    }
    if (unzipped && !media.starts_with("text/") && media.find("xml") == std::string::npos) type = media = "";
    if (!type.empty() && !readable(media, unzipped ? *unzipped : parse::body_text(page, body_field_))) {
      out.fail(std::move(page), fmt::format("'{}' is not HTML: its content type is '{}'", page_url, type));
      return;
    }
    // libxml2 gets UTF-8 only: the page is decoded here, as a browser would (BOM, the charset of
    // fetch's content_type, <meta charset>, then UTF-8 or windows-1252).
    const parse::PageText html = unzipped ? parse::decode_page(*unzipped, type) : parse::page_text(page, body_field_);
    Local& local = local_.local();
    CompiledCache& cache = local.cache;
    ParserContext& parser = local.parser;
    htmlDocPtr doc = nullptr;
    if (is_xml(media, html.text())) doc = read_xml(html.text(), page_url);
    // XML_PARSE_HUGE lifts libxml2's nesting limit of 256, at which it stops parsing without a
    // word: broken pages (unclosed tags) nest deeper. Memory stays bounded by fetch's max_body.
    if (!doc) {
      doc = parser.read(html.text(), page_url.c_str(), html.as_is ? nullptr : "UTF-8",
                        HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING | HTML_PARSE_NONET |
                            HTML_PARSE_COMPACT | XML_PARSE_HUGE);
    }
    if (!doc) {
      out.fail(std::move(page), fmt::format("cannot parse the HTML of '{}'", page_url));
      return;
    }
    xmlXPathContextPtr ctx = xmlXPathNewContext(doc);
    std::string xpath_error;
    ctx->userData = &xpath_error;
    ctx->error = keep_first_error;
    // The page's budget of selector steps: nodes visited by XPath and by string values, together.
    ctx->opLimit = kStepsPerPage + kStepsPerByte * html.text().size();
    xmlNodePtr root = reinterpret_cast<xmlNodePtr>(doc);
    const std::string base = links_ || resolves_ ? base_url(page_url, ctx, cache, root) : std::string();
    parse::SelectorStats::Tally& tally = stats_.tally();
    if (links_) {
      const std::size_t links = emit_links(page, page_url, base, ctx, cache, root, out);
      if (!spent(ctx) && xpath_error.empty()) tally.add(stats_.link_row(), links);
    }
    std::vector<xmlNodePtr> item_nodes = items_ ? nodes(ctx, cache, root, *items_) : std::vector<xmlNodePtr>{root};
    std::size_t made = 0;
    if (spent(ctx)) {
      item_nodes.clear();
    } else if (!xpath_error.empty()) {
      item_nodes.clear();
      out.fail(std::move(page), fmt::format("XPath error in 'items' or 'links' on '{}': {}", page_url, xpath_error));
    } else if (items_) {
      tally.add(parse::SelectorStats::kItemsRow, item_nodes.size());
    }
    for (xmlNodePtr item : item_nodes) {
      Record r = parse::item_record(page, page_url, keep_);
      std::string problem;
      for (std::size_t fi = 0; fi < fields_.size(); ++fi) {
        const FieldRule& f = fields_[fi];
        std::vector<std::string> kept;
        for (std::size_t si = 0; si < f.selectors.size() && kept.empty(); ++si) {
          auto values = evaluate(ctx, cache, item, f.selectors[si], f.all);
          if (spent(ctx)) break;
          if (!xpath_error.empty()) {
            if (problem.empty()) {
              problem =
                  fmt::format("field '{}': XPath error: {} (selector '{}')", f.name, xpath_error, f.selector_texts[si]);
            }
            xpath_error.clear();
          }
          for (auto& v : values) {
            if (f.regex) {
              std::string capture;
              bool matched = f.regex->NumberOfCapturingGroups() > 0 ? RE2::PartialMatch(v, *f.regex, &capture)
                                                                    : RE2::PartialMatch(v, *f.regex);
              if (!matched) continue;
              if (f.regex->NumberOfCapturingGroups() > 0) v = capture;
            }
            if (f.url) v = parse::resolve_link(base, v);  // empty (dropped) when it is no http(s) URL
            if (!v.empty()) kept.push_back(std::move(v));
          }
        }
        if (spent(ctx)) break;
        tally.add(stats_.field_row(fi), kept.size());
        List converted;
        std::string no_value;  // the first value without one, for a required field's error
        for (auto& k : kept) {
          if (!f.typed) {
            converted.emplace_back(std::move(k));
          } else if (auto n = f.typed->convert_text(k, &page)) {
            converted.push_back(std::move(*n));
          } else if (no_value.empty()) {
            no_value = nodes::sample_of(k);
          }
        }
        if (converted.empty() && f.required && problem.empty()) {
          problem = parse::required_field_error(f.name, "selector " + f.sources.quoted, f.typed.get(), no_value);
        }
        if (f.all) {
          r.set(f.name, Value(std::move(converted)));
        } else {
          r.set(f.name, converted.empty() ? Value() : std::move(converted.front()));
        }
      }
      if (spent(ctx)) break;
      ++made;
      if (!problem.empty()) {
        out.fail(std::move(r), std::move(problem));
      } else {
        out.emit(std::move(r), 0);
      }
    }
    if (spent(ctx)) {
      // Elements nested thousands deep (a broken or hostile page) make each item's selectors walk
      // most of the page: the work grows with the cube of the page. It stops here instead of
      // holding a worker for hours.
      out.fail(std::move(page),
               fmt::format("'{}' takes too much work to parse: its selectors visited {} nodes, the most a page "
                           "of {} bytes may take (elements nested very deep?); {} of its {} items were made",
                           page_url, ctx->opLimit, html.text().size(), made, item_nodes.size()));
    }
    xmlXPathFreeContext(ctx);
    xmlFreeDoc(doc);
    stats_.page_done();
  }

 private:
  // libxml2 state per thread, reused from page to page for the node's lifetime, and freed with the
  // node on the thread that ends the run. Not thread_local: a TBB worker's thread-local objects are
  // destroyed when it exits, which can be while the process exits and libxml2 (or OpenSSL, which
  // runs its cleanup then too) is torn down, and freeing a parser context then crashed.
  struct Local {
    CompiledCache cache;
    ParserContext parser;
  };
  tbb::enumerable_thread_specific<Local> local_;

  static std::string text_of(const Value* v) { return v && v->as_string() ? *v->as_string() : ""; }

  // The media type of a Content-Type, lower-cased, without its parameters ("text/html").
  static std::string media_type(std::string_view type) {
    std::string media = nodes::to_lower(type.substr(0, type.find(';')));
    while (!media.empty() && media.back() == ' ') media.pop_back();
    return media;
  }

  // Whether a page of this media type is an XML document (a feed, a sitemap, an API's XML) rather
  // than HTML: its type names XML and not HTML (text/xml, application/rss+xml, application/atom+xml),
  // or, untyped (none, text/plain), it starts with an XML declaration and has no <html>; served as
  // HTML, it starts with an XML declaration and an <rss>, <feed>, <urlset> or <sitemapindex> root.
  static bool is_xml(const std::string& media, std::string_view text) {
    const bool html = media.find("html") != std::string::npos;
    if (!html && media.find("xml") != std::string::npos) return true;
    if (!html && !media.empty() && media != "text/plain") return false;
    const auto start = text.find_first_not_of(" \t\r\n");
    if (start == std::string_view::npos || text.compare(start, 5, "<?xml") != 0) return false;
    const std::string head = nodes::to_lower(text.substr(start, 1024));
    if (head.find("<html") != std::string::npos) return false;
    // Served as text/html (a misconfigured server): only a feed or a sitemap is read as XML.
    return !html || head.find("<rss") != std::string::npos || head.find("<feed") != std::string::npos ||
           head.find("<urlset") != std::string::npos || head.find("<sitemapindex") != std::string::npos;
  }

  // An XML document parsed as XML: the HTML parser knows HTML's elements, and made an RSS <link> an
  // empty element (its URL was lost) and a CDATA section text with "<![CDATA[" in it. Namespaces are
  // removed, as Scrapy's remove_namespaces() does, so that plain selectors match: `loc` in a sitemap
  // (default namespace), `creator` for <dc:creator>. No DTD is loaded and no entity expanded (no
  // network, no "billion laughs"). Null when libxml2 made no root element of it (not XML after
  // all): the HTML parser reads it then.
  static xmlDocPtr read_xml(std::string_view text, const std::string& url) {
    const std::optional<std::string> repaired = repair_xml_references(text);
    if (repaired) text = *repaired;
    xmlDocPtr doc = xmlReadMemory(text.data(), static_cast<int>(text.size()), url.c_str(), "UTF-8",
                                  XML_PARSE_RECOVER | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_NONET |
                                      XML_PARSE_NOCDATA | XML_PARSE_COMPACT | XML_PARSE_IGNORE_ENC);
    xmlNodePtr node = doc ? xmlDocGetRootElement(doc) : nullptr;
    if (!node) {
      xmlFreeDoc(doc);
      return nullptr;
    }
    // Depth first without recursion: every element and attribute loses its namespace.
    while (node) {
      if (node->type == XML_ELEMENT_NODE) {
        node->ns = nullptr;
        for (xmlAttrPtr a = node->properties; a; a = a->next) a->ns = nullptr;
        if (node->children) {
          node = node->children;
          continue;
        }
      }
      while (node && !node->next)
        node = node->parent && node->parent->type == XML_ELEMENT_NODE ? node->parent : nullptr;
      if (node) node = node->next;
    }
    return doc;
  }

  // Whether parse.html reads a body of this media type: text/* or a type with html or xml in its
  // name; or one served as "application/octet-stream" (a file put in object storage without its
  // type) that starts like HTML, as the MIME sniffing standard reads such bodies.
  static bool readable(const std::string& media, std::string_view body) {
    if (media.starts_with("text/") || media.find("html") != std::string::npos || media.find("xml") != std::string::npos)
      return true;
    if (media != "application/octet-stream" && media != "binary/octet-stream" && media != "application/unknown" &&
        media != "unknown/unknown")
      return false;
    if (body.starts_with("\xEF\xBB\xBF")) body.remove_prefix(3);
    const auto start = body.find_first_not_of(" \t\r\n\f");
    if (start == std::string_view::npos) return false;
    const std::string head = nodes::to_lower(body.substr(start, 14));
    return head.starts_with("<!doctype html") || head.starts_with("<html") || head.starts_with("<head") ||
           head.starts_with("<body") || head.starts_with("<!--");
  }

  // The URL the page's relative links resolve against: its <base href>, else its own URL.
  static std::string base_url(const std::string& page_url, xmlXPathContextPtr ctx, CompiledCache& cache,
                              xmlNodePtr root) {
    static const Selector kBase = *parse::compile_selector("base[href]::attr(href)", false, nullptr);
    if (auto b = evaluate(ctx, cache, root, kBase, false); !b.empty() && !b.front().empty()) {
      if (std::string resolved = parse::resolve_link(page_url, b.front()); !resolved.empty()) return resolved;
    }
    return page_url;
  }

  // The fields' names and selectors, for the "selectors" table.
  static std::vector<std::pair<std::string, std::string>> selectors(const std::vector<FieldRule>& fields) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& f : fields) out.emplace_back(f.name, f.sources.listed);
    return out;
  }

  // Emits the page's links; returns how many.
  std::size_t emit_links(const Record& page, const std::string& page_url, const std::string& base,
                         xmlXPathContextPtr ctx, CompiledCache& cache, xmlNodePtr root, Emitter& out) {
    std::vector<std::string> hrefs = evaluate(ctx, cache, root, *links_, true);
    // A page that moved with <meta http-equiv="refresh" content="0; url=/new"> (browsers and
    // Scrapy follow it): its target is a link too, or a crawl would end at the stub.
    static const Selector kRefresh = *parse::compile_selector(
        "xpath:/html/head/meta[translate(@http-equiv, 'REFSH', 'refsh') = 'refresh']/@content", false, nullptr);
    for (const auto& content : evaluate(ctx, cache, root, kRefresh, false)) {
      if (std::string target = refresh_target(content); !target.empty()) hrefs.push_back(std::move(target));
    }
    std::size_t emitted = 0;
    for (const auto& href : hrefs) {
      // An empty href (or a selected element without the attribute) names no other page.
      if (href.find_first_not_of(" \t\r\n") == std::string::npos) continue;
      std::string url = parse::resolve_link(base, href);
      if (url.empty()) continue;
      out.emit(parse::link_record(page, page_url, std::move(url), keep_), 1);
      ++emitted;
    }
    return emitted;
  }

  // The URL of a refresh declaration ("5; url=/next", "0;URL='/next'", "3, /next"), read as the HTML
  // standard's shared declarative refresh steps do; empty when it has none.
  static std::string refresh_target(std::string_view content) {
    auto skip_space = [&](std::size_t i) {
      while (i < content.size() && std::isspace(static_cast<unsigned char>(content[i]))) ++i;
      return i;
    };
    std::size_t i = skip_space(0);
    const std::size_t digits = i;
    while (i < content.size() && (std::isdigit(static_cast<unsigned char>(content[i])) || content[i] == '.')) ++i;
    if (i == digits) return {};
    i = skip_space(i);
    if (i < content.size() && (content[i] == ';' || content[i] == ',')) i = skip_space(i + 1);
    if (i + 3 <= content.size() && (content[i] == 'u' || content[i] == 'U') &&
        (content[i + 1] == 'r' || content[i + 1] == 'R') && (content[i + 2] == 'l' || content[i + 2] == 'L')) {
      const std::size_t after = skip_space(i + 3);
      if (after < content.size() && content[after] == '=') i = skip_space(after + 1);
    }
    std::string_view url = content.substr(i);
    if (!url.empty() && (url.front() == '\'' || url.front() == '"')) {
      const char quote = url.front();
      url.remove_prefix(1);
      url = url.substr(0, url.find(quote));
    }
    while (!url.empty() && std::isspace(static_cast<unsigned char>(url.back()))) url.remove_suffix(1);
    return std::string(url);
  }

  std::string body_field_, url_field_;
  std::optional<Selector> items_;
  std::vector<FieldRule> fields_;
  std::optional<Selector> links_;
  std::vector<std::string> keep_;
  bool resolves_;  // a field has url: true
  parse::SelectorStats stats_;
  std::function<void(std::string)> notice_;
};

std::string check_selector(const Value& v) {
  std::string error;
  if (parse::compile_selector(v.to_text(), false, &error)) return "";
  return error;
}

std::string check_regex(const Value& v) {
  RE2 re(v.to_text(), RE2::Quiet);
  if (re.ok()) return "";
  return fmt::format("invalid regular expression '{}': {}", v.to_text(), re.error());
}

Schema field_schema() {
  return Schema(
      {
          FieldSpec::string("select", "CSS or XPath selector, relative to the item")
              .make_required()
              .validated_by(check_selector),
          FieldSpec::list("fallback",
                          FieldSpec::string("selector", "CSS or XPath selector").validated_by(check_selector),
                          "selectors tried in turn when `select` gives no value (after regex and url): a sale price "
                          "first, else the regular one")
              .with_default("[]"),
          FieldSpec::boolean("all", "every match as a list instead of the first").with_default("false"),
          FieldSpec::string("regex", "keep the first capture group (or the match) of this RE2 expression")
              .validated_by(check_regex),
          FieldSpec::boolean("required", "a record without this field is an error (on_error)").with_default("false"),
          FieldSpec::boolean("url",
                             "resolve the value against the page (and its <base href>) as links are: an absolute "
                             "http(s) URL; a value that is none is dropped")
              .with_default("false"),
          parse::field_type_spec(),
          parse::field_decimal_spec(),
          parse::field_date_order_spec(),
          parse::field_time_zone_spec(),
      },
      [](const Config& f, const Location& owner, Diagnostics& diags) {
        parse::check_field_type(f, owner, diags);
        if (f.boolean("url") && f.string("type") != "text") {
          diags.error(f.where("type"),
                      fmt::format("type: {0} and url: true do not go together: a URL is no {0}", f.string("type")));
        }
      });
}

}  // namespace

NodeType parse_html_type() {
  NodeType t;
  t.name = "parse.html";
  t.kind = NodeKind::transform;
  t.summary =
      "extracts items and fields from HTML, XML feeds and sitemaps (gzipped too) with CSS or XPath selectors, and "
      "the page's links";
  t.ports = transform_ports();
  t.ports.insert(t.ports.begin() + 2,
                 PortSpec{"links", PortDirection::output, "absolute http(s) links of the page: url, depth, from_url"});
  FieldSpec field = FieldSpec::object_of("field", field_schema(),
                                         "a selector, or {select, fallback, all, regex, required, url, type, decimal}");
  field.shorthand = "select";
  t.schema = Schema(
      {
          FieldSpec::string("items", "selector of the elements that become one record each (default: the page)")
              .validated_by(check_selector),
          FieldSpec::map("fields", field, "field name -> selector").with_default(""),
          parse::keep_spec(),
          FieldSpec::string("links",
                            "selector of the links to emit on the links port: a[href] (their href), or any "
                            "selector ending in ::attr(name) or ::text (a sitemap: loc::text), or XPath; a refresh "
                            "<meta>'s target is a link too")
              .validated_by(check_selector),
          FieldSpec::string("body_field", "the field holding the HTML").with_default("body"),
          FieldSpec::string("url_field", "the page URL links resolve against (falls back to url, then page_url)")
              .with_default("final_url"),
      },
      parse::check_keep_against_fields);
  t.factory = [](const NodeContext& ctx) -> std::unique_ptr<Node> {
    parse::init_libxml();
    const Config& c = ctx.config;
    std::optional<Selector> items;
    if (c.has("items")) items = parse::compile_selector(c.string("items"), false, nullptr);
    std::optional<Selector> links;
    if (c.has("links")) {
      links = parse::compile_selector(c.string("links"), false, nullptr);
      // `links: a[href]` means the elements' href, not their text.
      if (links->pick == Selector::Pick::string_value && !c.string("links").starts_with("/") &&
          !c.string("links").starts_with("xpath:")) {
        links->pick = Selector::Pick::attribute;
        links->attribute = "href";
      }
    }
    std::vector<FieldRule> fields;
    for (const auto& [name, value] : c.map("fields")) {
      const Config& f = *std::get<ConfigValue::Object>(value.v);
      FieldRule rule;
      rule.name = name;
      rule.selector_texts.push_back(f.string("select"));
      for (const auto& fallback : f.list("fallback"))
        rule.selector_texts.push_back(std::get<Value>(fallback.v).to_text());
      for (const auto& text : rule.selector_texts)
        rule.selectors.push_back(*parse::compile_selector(text, true, nullptr));
      rule.sources = parse::sources_of(rule.selector_texts);
      rule.all = f.boolean("all");
      rule.required = f.boolean("required");
      rule.url = f.boolean("url");
      if (f.has("regex")) rule.regex = std::make_shared<const RE2>(f.string("regex"));
      rule.typed = parse::typed_field_of(f);
      fields.push_back(std::move(rule));
    }
    return std::make_unique<HtmlParser>(ctx, std::move(items), std::move(fields), std::move(links));
  };
  t.parallel = true;
  t.example = R"(- id: products
  type: parse.html
  items: div.product
  fields:
    name: h2.name::text
    price: {select: span.price, type: number, required: true}
    listed: {select: time, type: date}
    tags: {select: ul.tags li, all: true}
  links: a[href]::attr(href))";
  return t;
}

}  // namespace sluice::nodes
