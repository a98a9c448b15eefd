#include "links.hpp"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <optional>

#include "../text.hpp"

namespace sluice::parse {

std::string_view body_text(const Record& page, const std::string& field) {
  const Value* body = page.get(field);
  if (body && body->as_bytes()) return body->as_bytes()->view();
  if (body && body->as_string()) return *body->as_string();
  return {};
}

std::string page_url_of(const Record& page, const std::string& url_field) {
  static const std::string kUrl = "url", kPageUrl = "page_url";
  for (const std::string* name : {&url_field, &kUrl, &kPageUrl}) {
    if (const Value* v = page.get(*name); v && v->as_string() && !v->as_string()->empty()) return *v->as_string();
  }
  return "";
}

Record item_record(const Record& page, const std::string& page_url, const std::vector<std::string>& keep) {
  Record r = page.derive();
  r.meta.origin_url = page_url;
  r.set("page_url", Value(page_url));
  r.set("depth", Value(static_cast<std::int64_t>(page.meta.depth)));
  if (const Value* at = page.get("fetched_at")) r.set("fetched_at", *at);
  keep_fields(page, keep, r);
  return r;
}

void keep_fields(const Record& page, const std::vector<std::string>& keep, Record& item) {
  for (const auto& name : keep) {
    if (const Value* v = page.get(name)) item.set(name, *v);
  }
}

FieldSources sources_of(const std::vector<std::string>& written) {
  FieldSources out;
  for (const auto& w : written) {
    out.quoted += fmt::format("{}'{}'", out.quoted.empty() ? "" : ", then ", w);
    out.listed += (out.listed.empty() ? "" : " or ") + w;
  }
  return out;
}

FieldSpec keep_spec() {
  return FieldSpec::list("keep", FieldSpec::string("field", "a field of the page's record"),
                         "fields of the page's record copied into each item (and link: a frontier carries them to "
                         "the next page): the id or search term a page was fetched for (a field the page lacks is "
                         "left out)")
      .with_default("");
}

std::vector<std::string> keep_of(const Config& config) {
  std::vector<std::string> keep;
  for (const auto& k : config.list("keep")) keep.push_back(std::get<Value>(k.v).to_text());
  return keep;
}

void check_keep(const Config& config, const std::vector<std::string>& produced, Diagnostics& diags) {
  if (!config.has("keep")) return;
  for (const auto& k : config.list("keep")) {
    const std::string name = std::get<Value>(k.v).to_text();
    if (std::find(produced.begin(), produced.end(), name) != produced.end()) {
      diags.error(k.where, fmt::format("'{}' is both kept from the page and extracted by this node: rename one", name));
    }
  }
}

void check_keep_against_fields(const Config& config, const Location&, Diagnostics& diags) {
  std::vector<std::string> produced;
  for (const auto& [name, value] : config.map("fields")) produced.push_back(name);
  check_keep(config, produced, diags);
}

namespace {

// Whether the authority of a link as written is one a link may have: a host of letters, digits,
// '-', '.' and '_' (bytes beyond ASCII where punycode could not be made), or a bracketed IPv6
// address; user information of RFC 3986's characters. libcurl lets others through ("a%zz.example",
// a user name with spaces), and an empty host after punycode ("http:/\uFEFF/a"): URLs that no
// resolver knows, that libcurl then refuses to read again, or that a second pass writes differently.
bool valid_authority(std::string_view url) {
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return false;
  std::string_view authority = url.substr(scheme_end + 3);
  authority = authority.substr(0, authority.find_first_of("/?#"));
  if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
    const std::string_view user = authority.substr(0, at);
    if (!std::all_of(user.begin(), user.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) ||
                 std::string_view("-._~%!$&'()*+,;=:").find(c) != std::string_view::npos;
        }))
      return false;
    authority.remove_prefix(at + 1);
  }
  if (authority.starts_with('[')) return true;
  const std::string_view host = authority.substr(0, authority.find(':'));
  return !host.empty() && std::all_of(host.begin(), host.end(), [](char c) {
    const auto b = static_cast<unsigned char>(c);
    return b >= 0x80 || std::isalnum(b) || c == '-' || c == '.' || c == '_';
  });
}

}  // namespace

std::string resolve_link(const std::string& base, const std::string& href) {
  // A host name beyond ASCII becomes punycode, as browsers resolve links: "café.example" and
  // "xn--caf-dma.example" are one host to the frontier, and fetch sends it so.
  const bool wide = nodes::needs_escapes(href) || nodes::needs_escapes(base);
  std::optional<nodes::Utf8Ctype> utf8;
  if (wide) utf8.emplace();
  CURLU* u = curl_url();
  std::string out;
  // The base too: a page's <base href>, or a URL of a list, may hold them as raw bytes. Spaces
  // become %20, as browsers resolve them (libcurl would make one in a query a '+').
  auto set = [u](const std::string& url) {
    if (!nodes::needs_escapes(url)) return curl_url_set(u, CURLUPART_URL, url.c_str(), 0);
    return curl_url_set(u, CURLUPART_URL, nodes::spaces_escaped(url).c_str(), CURLU_URLENCODE);
  };
  if (set(base) == CURLUE_OK && set(href) == CURLUE_OK) {
    char* scheme = nullptr;
    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    std::string sch = scheme ? scheme : "";
    curl_free(scheme);
    if (sch == "http" || sch == "https") {
      curl_url_set(u, CURLUPART_FRAGMENT, nullptr, 0);
      char* host = nullptr;
      if (curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && host) {
        std::string lower = host;
        for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        curl_url_set(u, CURLUPART_HOST, lower.c_str(), 0);
      }
      curl_free(host);
      char* full = nullptr;
      if ((wide && curl_url_get(u, CURLUPART_URL, &full, CURLU_NO_DEFAULT_PORT | CURLU_PUNYCODE) == CURLUE_OK) ||
          curl_url_get(u, CURLUPART_URL, &full, CURLU_NO_DEFAULT_PORT) == CURLUE_OK) {
        if (full && valid_authority(full)) out = full;
        nodes::uppercase_escapes(out);
      }
      curl_free(full);
    }
  }
  curl_url_cleanup(u);
  // One more pass gives the form that stays when this one made a host libcurl reads otherwise the
  // next time: punycode of "11121\uFEFF13" is "1112113", an IPv4 address (0.16.248.49), and a
  // percent-encoded host ("%D2%A0.example") comes back decoded, beyond ASCII, for punycode.
  if (!out.empty() && wide != nodes::needs_escapes(out)) return resolve_link(out, out);
  return out;
}

namespace {

// A dotted quad as libcurl writes an IPv4 address: four numbers 0-255 without leading zeros.
bool canonical_ipv4(std::string_view host) {
  int parts = 0;
  for (std::size_t start = 0; start <= host.size(); ++parts) {
    const std::size_t dot = std::min(host.find('.', start), host.size());
    const std::string_view n = host.substr(start, dot - start);
    if (n.empty() || n.size() > 3 || (n.size() > 1 && n[0] == '0') ||
        !std::all_of(n.begin(), n.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
        std::stoi(std::string(n)) > 255)
      return false;
    start = dot + 1;
  }
  return parts == 4;
}

// A label libcurl may read as a number of an IPv4 address: decimal, octal or 0x hexadecimal.
bool numeric_label(std::string_view label) {
  if (label.size() >= 2 && label[0] == '0' && (label[1] == 'x' || label[1] == 'X'))
    return std::all_of(label.begin() + 2, label.end(),
                       [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
  return !label.empty() && std::all_of(label.begin(), label.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// What follows the host in an authority: nothing, or ':' and a port libcurl takes (digits, at most
// 65535).
bool plain_port(std::string_view rest) {
  if (rest.empty()) return true;
  if (rest.front() != ':') return false;
  rest.remove_prefix(1);
  if (rest.empty() || rest.size() > 5) return false;
  if (!std::all_of(rest.begin(), rest.end(), [](char c) { return c >= '0' && c <= '9'; })) return false;
  return std::stoi(std::string(rest)) <= 65535;
}

}  // namespace

std::optional<std::string> plain_host(std::string_view url) {
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return std::nullopt;
  const std::size_t start = scheme_end + 3;
  const std::size_t end = std::min(url.find_first_of("/?#", start), url.size());
  const std::string_view authority = url.substr(start, end - start);
  if (authority.empty() || authority.find('@') != std::string_view::npos) return std::nullopt;
  std::string out;
  if (authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos || close == 1 || !plain_port(authority.substr(close + 1))) return std::nullopt;
    const std::string_view inner = authority.substr(1, close - 1);
    if (!std::all_of(inner.begin(), inner.end(),
                     [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) || c == ':'; }))
      return std::nullopt;  // a zone id, an embedded IPv4 address: libcurl's form may differ
    out = "[" + nodes::to_lower(inner) + "]";
    // libcurl writes IPv6 addresses in their shortest form; one written otherwise goes through it.
    char buf[64];
    unsigned char bytes[16];
    const std::string text(inner);
    if (::inet_pton(AF_INET6, text.c_str(), bytes) != 1 || !::inet_ntop(AF_INET6, bytes, buf, sizeof buf) ||
        out != "[" + std::string(buf) + "]")
      return std::nullopt;
    return out;
  }
  const std::string_view host = authority.substr(0, authority.find(':'));
  if (host.empty() || !plain_port(authority.substr(host.size()))) return std::nullopt;
  // Numbers: libcurl turns 2130706433, 0x7f.1 or 127.1 into 127.0.0.1; only the canonical form is read here.
  bool numeric = true;
  for (std::size_t from = 0; from <= host.size() && numeric;) {
    const std::size_t dot = std::min(host.find('.', from), host.size());
    numeric = numeric_label(host.substr(from, dot - from));
    from = dot + 1;
  }
  if ((numeric || std::isdigit(static_cast<unsigned char>(host.back()))) && !canonical_ipv4(host)) return std::nullopt;
  out.reserve(host.size());
  for (char c : host) {
    const auto u = static_cast<unsigned char>(c);
    if (!std::isalnum(u) && c != '-' && c != '.' && c != '_') return std::nullopt;
    out += static_cast<char>(std::tolower(u));
  }
  return out;
}

std::string url_host(const std::string& url) {
  if (auto host = plain_host(url)) return std::move(*host);
  CURLU* u = curl_url();
  std::string out;
  if (curl_url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK) {
    char* host = nullptr;
    if (curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && host) out = host;
    curl_free(host);
  }
  curl_url_cleanup(u);
  return nodes::to_lower(out);
}

namespace {

// A URL cut around its query: what comes before the '?', the parameters (split at '&', empty ones
// included), and the fragment with its '#' (empty when none). nullopt when there is no query.
struct QueryParts {
  std::string_view before, fragment;
  std::vector<std::string_view> params;
};

std::optional<QueryParts> split_query(std::string_view url) {
  const auto hash = url.find('#');
  const auto question = url.substr(0, hash).find('?');
  if (question == std::string_view::npos) return std::nullopt;
  QueryParts parts;
  parts.before = url.substr(0, question);
  if (hash != std::string_view::npos) parts.fragment = url.substr(hash);
  const std::string_view query = url.substr(question + 1, url.size() - question - 1 - parts.fragment.size());
  for (std::size_t start = 0; start <= query.size();) {
    const auto amp = std::min(query.find('&', start), query.size());
    parts.params.push_back(query.substr(start, amp - start));
    start = amp + 1;
  }
  return parts;
}

std::string_view param_name(std::string_view param) {
  return param.substr(0, param.find('='));
}

// before?a&b#fragment; without the '?' when `params` is empty and `keep_mark` false.
std::string join_query(const QueryParts& parts, bool keep_mark) {
  std::string out(parts.before);
  if (!parts.params.empty() || keep_mark) out += '?';
  for (std::size_t i = 0; i < parts.params.size(); ++i) {
    if (i) out += '&';
    out += parts.params[i];
  }
  out += parts.fragment;
  return out;
}

}  // namespace

std::string strip_query(std::string_view url, const std::vector<std::string>& names) {
  auto parts = names.empty() ? std::nullopt : split_query(url);
  if (!parts) return std::string(url);
  const auto stripped = [&](std::string_view param) {
    return std::any_of(names.begin(), names.end(), [&](const std::string& n) {
      const std::string_view name = param_name(param);
      return n.ends_with('*') ? name.starts_with(std::string_view(n).substr(0, n.size() - 1)) : name == n;
    });
  };
  // A URL without such parameters stays as it was, byte for byte (empty parameters included).
  if (std::none_of(parts->params.begin(), parts->params.end(),
                   [&](std::string_view p) { return !p.empty() && stripped(p); }))
    return std::string(url);
  std::erase_if(parts->params, [&](std::string_view p) { return p.empty() || stripped(p); });
  return join_query(*parts, false);
}

std::string sort_query(std::string_view url) {
  auto parts = split_query(url);
  if (!parts) return std::string(url);
  std::stable_sort(parts->params.begin(), parts->params.end(),
                   [](std::string_view a, std::string_view b) { return param_name(a) < param_name(b); });
  return join_query(*parts, true);
}

std::optional<std::string> query_param(std::string_view url, std::string_view name) {
  const auto parts = split_query(url);
  if (!parts) return std::nullopt;
  for (std::string_view p : parts->params) {
    if (param_name(p) != name) continue;
    return p.size() == name.size() ? std::string() : std::string(p.substr(name.size() + 1));
  }
  return std::nullopt;
}

std::string with_query_param(std::string_view url, std::string_view name, std::string_view value) {
  const std::string param = std::string(name) + "=" + std::string(value);
  auto parts = split_query(url);
  if (!parts) {
    const auto hash = url.find('#');
    const std::string_view fragment = hash == std::string_view::npos ? std::string_view() : url.substr(hash);
    return std::string(url.substr(0, url.size() - fragment.size())) + "?" + param + std::string(fragment);
  }
  const auto it = std::find_if(parts->params.begin(), parts->params.end(),
                               [&](std::string_view p) { return param_name(p) == name; });
  if (it != parts->params.end()) {
    *it = param;
  } else if (parts->params.size() == 1 && parts->params[0].empty()) {  // "?" alone
    parts->params[0] = param;
  } else {
    parts->params.push_back(param);
  }
  return join_query(*parts, true);
}

std::string link_header_target(std::string_view header, std::string_view rel) {
  constexpr std::string_view kSpace = " \t";
  std::size_t i = 0;
  auto skip_space = [&] {
    while (i < header.size() && kSpace.find(header[i]) != std::string_view::npos) ++i;
  };
  while (i < header.size()) {
    skip_space();
    if (i < header.size() && header[i] == ',') {
      ++i;
      continue;
    }
    if (i >= header.size() || header[i] != '<') return "";  // not a Link header
    const std::size_t close = header.find('>', i + 1);
    if (close == std::string_view::npos) return "";
    const std::string_view target = header.substr(i + 1, close - i - 1);
    i = close + 1;
    bool found = false;
    // Its parameters: `; name=value` or `; name="quoted, value"`, up to the ',' before the next link.
    for (skip_space(); i < header.size() && header[i] == ';'; skip_space()) {
      ++i;
      skip_space();
      const std::size_t name_start = i;
      while (i < header.size() && std::string_view("=;, \t").find(header[i]) == std::string_view::npos) ++i;
      const std::string_view name = header.substr(name_start, i - name_start);
      skip_space();
      std::string value;
      if (i < header.size() && header[i] == '=') {
        ++i;
        skip_space();
        if (i < header.size() && header[i] == '"') {
          for (++i; i < header.size() && header[i] != '"'; ++i) {
            if (header[i] == '\\' && i + 1 < header.size()) ++i;
            value += header[i];
          }
          if (i < header.size()) ++i;  // the closing quote
        } else {
          const std::size_t end = std::min(header.find_first_of(";, \t", i), header.size());
          value = header.substr(i, end - i);
          i = end;
        }
      }
      if (nodes::iequals(name, "rel")) {
        for (std::string_view types = value; !types.empty();) {
          const std::size_t space = types.find_first_of(kSpace);
          if (nodes::iequals(types.substr(0, space), rel)) found = true;
          types = space == std::string_view::npos ? std::string_view() : nodes::trim(types.substr(space), kSpace);
        }
      }
    }
    if (found) return std::string(target);
    // Anything else up to the next link (a malformed parameter) is passed over.
    const std::size_t comma = header.find(',', i);
    if (comma == std::string_view::npos) return "";
    i = comma;
  }
  return "";
}

Record link_record(const Record& page, const std::string& page_url, std::string url,
                   const std::vector<std::string>& keep) {
  Record link = page.derive();
  link.meta.depth = page.meta.depth + 1;
  link.meta.origin_url = page_url;
  link.set("url", Value(std::move(url)));
  link.set("depth", Value(static_cast<std::int64_t>(link.meta.depth)));
  link.set("from_url", Value(page_url));
  for (const auto& name : keep) {  // a link's own fields stay its own: keep: [url] keeps the page's on items
    if (name == "url" || name == "depth" || name == "from_url") continue;
    if (const Value* v = page.get(name)) link.set(name, *v);
  }
  return link;
}

}  // namespace sluice::parse
