// The small parsers of untrusted text: links and URLs of scraped pages, a server's Retry-After,
// Content-Disposition, Content-Type and gzip bodies, robots.txt, charsets, numbers and dates in
// scraped text (parse's `type: number` and `date`, on the Retry-After input); and the properties the nodes rely on (a
// link resolves to itself, decoded text is UTF-8, a file name stays in its folder). The first byte picks the function,
// the rest is its input (lines where it takes several).
#include <cmath>

#include "../../nodes/core/file_names.hpp"
#include "../../nodes/fetch/policy.hpp"
#include "../../nodes/fetch/robots.hpp"
#include "../../nodes/parse/charset.hpp"
#include "../../nodes/parse/date.hpp"
#include "../../nodes/parse/gzip.hpp"
#include "../../nodes/parse/links.hpp"
#include "../../nodes/parse/number.hpp"
#include "fuzz.hpp"
#include "sluice/json.hpp"
#include "sluice/template.hpp"

namespace {

using namespace sluice;

bool is_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = utf8_sequence(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

void links(fuzz::Input& in) {
  const std::string base(in.line());
  const std::string href(in.rest());
  const std::string url = parse::resolve_link(base, href);
  if (url.empty()) return;
  FUZZ_CHECK(url.starts_with("http://") || url.starts_with("https://"), "a link that is not http(s)");
  FUZZ_CHECK(url.find('#') == std::string::npos, "a link that kept its fragment");
  // A normalized link is its own normal form: the frontier's seen-set depends on it.
  FUZZ_CHECK(parse::resolve_link(url, url) == url, "resolving a resolved link changed it");
  FUZZ_CHECK(parse::resolve_link(base, url) == url, "an absolute link depends on its base");
  const std::string host = parse::url_host(url);
  FUZZ_CHECK(!host.empty(), "a resolved link without a host");
  if (const auto plain = parse::plain_host(url)) FUZZ_CHECK(*plain == host, "plain_host and url_host differ");
  const std::string sorted = parse::sort_query(url);
  FUZZ_CHECK(parse::sort_query(sorted) == sorted, "sort_query is not idempotent");
  FUZZ_CHECK(sorted.size() == url.size(), "sort_query changed the URL's length");
  const std::string stripped = parse::strip_query(url, {"utm_*", "sid", ""});
  FUZZ_CHECK(stripped.size() <= url.size(), "strip_query made a URL longer");
  // The same text as an HTTP Link header: a target found is text between its angle brackets.
  const std::string next = parse::link_header_target(href, "next");
  FUZZ_CHECK(next.empty() || (next.find('>') == std::string::npos && href.find("<" + next + ">") != std::string::npos),
             "a Link header's target that is not between its angle brackets");
}

// parse's `type: number` and `integer`: a number read is finite, reads back as itself from how a
// sink writes it, and an integer is the same number as `number` reads.
void numbers(std::string_view text) {
  for (const char decimal : {'.', ','}) {
    const auto number = parse::read_number(text, parse::NumberType::number, decimal);
    const auto integer = parse::read_number(text, parse::NumberType::integer, decimal);
    if (integer) {
      FUZZ_CHECK(number, "an integer that is no number");
      const double n = number->as_int() ? static_cast<double>(*number->as_int()) : *number->as_double();
      FUZZ_CHECK(static_cast<double>(*integer->as_int()) == n, "an integer that is another number");
    }
    if (!number) continue;
    FUZZ_CHECK(number->as_int() || std::isfinite(*number->as_double()), "a number that is not finite");
    const auto again = parse::read_number(number->to_text(), parse::NumberType::number, '.');
    FUZZ_CHECK(again && again->to_text() == number->to_text(), "a number that does not read back as itself");
  }
}

// parse's `type: date`: a date read is ISO 8601 text of a date that exists, and reads back as itself.
void dates(std::string_view text) {
  for (const auto order : {parse::DateOrder::unset, parse::DateOrder::dmy, parse::DateOrder::mdy}) {
    const auto date = parse::read_date(text, order, 1772721000);  // relative dates too
    if (!date) continue;
    FUZZ_CHECK((date->size() == 7 && (*date)[4] == '-') ||
                   (date->size() >= 10 && (*date)[4] == '-' && (*date)[7] == '-' &&
                    (date->size() == 10 || ((*date)[10] == 'T' && (*date)[13] == ':' && (*date)[16] == ':'))),
               "a date that is not ISO 8601");
    FUZZ_CHECK(parse::read_date(*date, parse::DateOrder::unset) == date, "a date that does not read back as itself");
  }
  const auto number = parse::read_number(text, parse::NumberType::number, '.');
  if (number) {
    const double seconds = number->as_int() ? static_cast<double>(*number->as_int()) : *number->as_double();
    if (const auto epoch = parse::date_of_epoch(seconds)) {
      FUZZ_CHECK(parse::read_date(*epoch, parse::DateOrder::unset) == epoch, "an epoch date that does not read back");
    }
  }
}

void retry_after(fuzz::Input& in) {
  const auto wait = fetch::parse_retry_after(in.rest(), 1'700'000'000);
  if (wait) FUZZ_CHECK(wait->count() >= 0, "a negative Retry-After");
  const auto rate = fetch::parse_rate(in.rest());
  if (rate) FUZZ_CHECK(*rate > 0 && *rate < 1e300, "a rate that is not positive and finite");
  (void)fetch::is_private_address(in.rest());
  (void)fetch::host_pattern_error(in.rest());
  numbers(in.rest());
  dates(in.rest());
}

void file_names(fuzz::Input& in) {
  const std::string_view disposition = in.line();
  const std::string url(in.rest());
  const std::string served = nodes::served_name(disposition, url);
  FUZZ_CHECK(!served.empty() && served.find('/') == std::string::npos && served.front() != '.' &&
                 served.find('\0') == std::string::npos,
             "a server's file name that is no single plain name");
  const std::string hashed = nodes::hashed_name(url, disposition);
  FUZZ_CHECK(hashed.find('/') == std::string::npos && hashed.front() != '.', "a hashed name with a folder");
  std::string error;
  const std::string relative = nodes::checked_relative(std::string(in.rest()), error);
  FUZZ_CHECK(relative.empty() != error.empty(), "checked_relative gave both or neither of a path and an error");
  if (!relative.empty()) {
    FUZZ_CHECK(relative.front() != '/', "an absolute path let through");
    FUZZ_CHECK(relative != ".." && !relative.starts_with("../") && relative.find("/../") == std::string::npos &&
                   !relative.ends_with("/.."),
               "a path with '..' let through");
  }
}

void charset(fuzz::Input& in) {
  const std::string_view content_type = in.line();
  const parse::PageText page = parse::decode_page(in.rest(), content_type);
  FUZZ_CHECK(is_utf8(page.text()), "decoded page text that is not UTF-8");
  (void)parse::encoding_for_label(parse::charset_param(content_type));
  const std::string clean = sanitize_utf8(in.rest());
  FUZZ_CHECK(is_utf8(clean), "sanitize_utf8 left invalid UTF-8");
  std::string json;
  append_json_string(json, in.rest());
  FUZZ_CHECK(json.size() >= 2 && json.front() == '"' && json.back() == '"' && is_utf8(json),
             "a JSON string literal that is not one");
}

void gzip(fuzz::Input& in) {
  std::string error;
  constexpr std::size_t kMax = 1 << 20;
  const auto out = parse::gunzip(in.rest(), error, kMax);
  FUZZ_CHECK(out.has_value() == error.empty(), "gunzip gave both or neither of a body and an error");
  if (out) FUZZ_CHECK(out->size() <= kMax, "gunzip went past its cap");
}

void robots(fuzz::Input& in) {
  const std::string_view paths = in.line();
  const auto rules = fetch::RobotsRules::parse(in.rest(), "sluice/0.1");
  std::string_view rest = paths;
  while (!rest.empty()) {
    const auto end = rest.find(' ');
    const std::string_view path = rest.substr(0, end);
    (void)rules.allowed(path);
    const std::string canonical = fetch::RobotsRules::canonical(path);
    FUZZ_CHECK(fetch::RobotsRules::canonical(canonical) == canonical, "canonical() is not idempotent");
    rest.remove_prefix(end == std::string_view::npos ? rest.size() : end + 1);
  }
  if (const auto delay = rules.crawl_delay()) FUZZ_CHECK(*delay >= 0, "a negative crawl delay");
}

void templates(fuzz::Input& in) {
  const std::string_view text = in.line();
  Record r;
  r.set("v", std::string(in.rest()));
  r.set("n", static_cast<std::int64_t>(in.rest().size()));
  std::string error;
  if (const auto t = FieldTemplate::compile(text, &error)) {
    (void)t->render(r);
  } else {
    FUZZ_CHECK(!error.empty(), "a template refused without a reason");
  }
  const std::string file = FieldTemplate::compile("{v:file}")->render(r);
  FUZZ_CHECK(!file.empty() && file.size() <= 200 && file.front() != '.' && file.find('/') == std::string::npos &&
                 file.find('\\') == std::string::npos,
             "{v:file} is no plain file name of at most 200 bytes");
  const std::string url = FieldTemplate::compile("{v:url}")->render(r);
  for (std::size_t i = 0; i < url.size(); ++i) {
    const char c = url[i];
    if (c == '%') {
      FUZZ_CHECK(i + 2 < url.size() && std::isxdigit(static_cast<unsigned char>(url[i + 1])) &&
                     std::isxdigit(static_cast<unsigned char>(url[i + 2])),
                 "a broken escape in {v:url}");
      i += 2;
      continue;
    }
    FUZZ_CHECK(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' || c == '~',
               "{v:url} kept a character a URL must escape");
  }
  const std::string json = FieldTemplate::compile("{v:json}")->render(r);
  FUZZ_CHECK(json.size() >= 2 && json.front() == '"' && json.back() == '"' && is_utf8(json),
             "{v:json} is no JSON string");
  const std::string lower = FieldTemplate::compile("{v:lower}")->render(r);
  const std::string upper = FieldTemplate::compile("{v:upper}")->render(r);
  FUZZ_CHECK(lower.size() == in.rest().size() && upper.size() == in.rest().size(), "lower or upper changed a length");
  FUZZ_CHECK(is_utf8(in.rest()) == is_utf8(lower), "lower broke UTF-8");
  const std::string trimmed = FieldTemplate::compile("{v:trim}")->render(r);
  FUZZ_CHECK(in.rest().find(trimmed) != std::string_view::npos && FieldTemplate::compile("{t:trim}")->render([&] {
    Record again;
    again.set("t", trimmed);
    return again;
  }()) == trimmed,
             "trim is not a part of its text, or not idempotent");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  sluice::fuzz::Input in(data, size);
  switch (in.byte() % 7) {
    case 0:
      links(in);
      break;
    case 1:
      retry_after(in);
      break;
    case 2:
      file_names(in);
      break;
    case 3:
      charset(in);
      break;
    case 4:
      gzip(in);
      break;
    case 5:
      robots(in);
      break;
    default:
      templates(in);
      break;
  }
  return 0;
}
