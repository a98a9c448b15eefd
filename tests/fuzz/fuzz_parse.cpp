// What a server sends to the parsers: parse.html (HTML, XML feeds, sitemaps, gzipped bodies, any
// charset), parse.json and parse.regex, with the configs of the shipped pipelines and fields typed
// as numbers and dates. The input is the body; its first byte also picks the parser and the
// Content-Type it came with.
#include <array>

#include "fuzz.hpp"

namespace {

const char* const kPipeline = R"(
nodes:
  - id: urls
    type: source.list
    urls: ["http://127.0.0.1/"]
  - id: shop
    type: parse.html
    items: div.item
    links: a[href]
    keep: [url]
    fields:
      name: h1.name
      sku: span.sku
      price: {select: span.price, regex: '([0-9]+[.][0-9]+)', required: true}
      tags: {select: ul.tags li, all: true}
      cost: {select: span.price, type: number, decimal: ','}
      listed: {select: time, type: date, date_order: dmy}
      image: {select: 'img::attr(src)', url: true}
      text: '//p[contains(@class, "d")]/text()'
  - id: sitemap
    type: parse.html
    items: url
    fields: {loc: {select: "loc::text", url: true}, lastmod: {select: lastmod, type: date}}
    links: loc::text
  - id: feed
    type: parse.html
    items: item
    fields:
      title: title
      link: {select: link, url: true}
      summary: description
      author: creator
      published: {select: pubDate, type: date}
      all: {select: '*', all: true}
  - id: api
    type: parse.json
    items: data.items
    fields: {id: id, name: name, price: {path: price.amount, required: true}, tags: /tags,
             updated: {path: updated, type: date}, stock: {path: stock, type: integer}}
    next: links.next
    fail_if: error
  - id: whole
    type: parse.json
    fields: {first: /0, deep: a.b.c.0}
  - id: keyed
    type: parse.json
    items: data
    item_key: key
    fields: {name: name, value: '', urls: images.*.url, every: '*.*', prices: {path: '*.price', type: number}}
    next: meta.cursor
    next_url: '/items?after={next:url}&from={url:url}'
    next_field: cursor
    next_if: meta.more
  - id: paged
    type: parse.json
    items: data.items
    fields: {id: id}
    offset_param: offset
  - id: prices
    type: parse.regex
    pattern: 'SKU (?P<sku>SL-[0-9]+): (?P<price>[0-9.]+)'
    all: true
    types: {price: number}
  - id: out
    type: sink.jsonl
    path: /dev/null
edges:
  - urls -> shop -> out
  - shop.links -> out
  - urls -> sitemap -> out
  - sitemap.links -> out
  - urls -> feed -> out
  - urls -> api -> out
  - api.links -> out
  - urls -> whole -> out
  - urls -> paged -> out
  - paged.links -> out
  - urls -> keyed -> out
  - keyed.links -> out
  - urls -> prices -> out
)";

// In an order that sends each seed of corpus/parse to a parser by its first byte: '{' (api.json)
// to api, '<' (feed.xml) to sitemap, 'S' (prices.txt) to whole, ' ' (keyed.json) to keyed.
constexpr std::array kParsers{"sitemap", "api", "shop", "whole", "keyed", "feed", "prices"};
constexpr std::array kTypes{"text/html",
                            "text/html; charset=iso-8859-1",
                            "application/xml",
                            "application/rss+xml; charset=windows-1251",
                            "",
                            "application/json",
                            "application/x-gzip",
                            "text/plain; charset=utf-16"};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace sluice;
  static const fuzz::Pipeline pipeline = fuzz::load(kPipeline);
  static const auto parsers = [] {
    std::vector<std::unique_ptr<Node>> made;
    for (const char* id : kParsers) made.push_back(pipeline.make(id));
    return made;
  }();
  const std::uint8_t pick = size > 0 ? data[0] : 0;
  auto* parser = dynamic_cast<TransformNode*>(parsers[(pick / kTypes.size()) % kParsers.size()].get());
  FUZZ_CHECK(parser != nullptr, "not a transform");
  Record page;
  page.set("url", "http://127.0.0.1/a/b.html?page=2");
  page.set("final_url", "http://127.0.0.1/a/b.html?page=2");
  page.set("content_type", kTypes[pick % kTypes.size()]);
  page.set("body", Bytes(std::string(reinterpret_cast<const char*>(data), size)));
  fuzz::CountingEmitter out;
  try {
    parser->process(page, out);
  } catch (const NodeError&) {
    ++out.failed;  // fails the record, as the engine does with what process() throws
  }
  return 0;
}
