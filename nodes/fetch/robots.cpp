#include "robots.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "../text.hpp"

namespace sluice::fetch {

// RFC 9309, 2.2.2: octets beyond ASCII are percent-encoded, percent-encoded unreserved characters
// are decoded (%41 is A; %2F stays), and hex digits are upper-case, in the rules and in the path
// alike, so that "/café", "/caf%C3%A9" and "/caf%c3%a9" are one path.
std::string RobotsRules::canonical(std::string_view path) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(path.size());
  for (std::size_t i = 0; i < path.size(); ++i) {
    const auto c = static_cast<unsigned char>(path[i]);
    if (c == '%' && i + 2 < path.size() && nodes::hex_digit(path[i + 1]) >= 0 && nodes::hex_digit(path[i + 2]) >= 0) {
      const auto v = static_cast<unsigned char>(nodes::hex_digit(path[i + 1]) * 16 + nodes::hex_digit(path[i + 2]));
      if (std::isalnum(v) || v == '-' || v == '.' || v == '_' || v == '~') {
        out += static_cast<char>(v);
      } else {
        out += '%';
        out += kHex[v >> 4];
        out += kHex[v & 15];
      }
      i += 2;
    } else if (c >= 0x80 || c == ' ' || c == '%') {  // a '%' that starts no escape is one itself
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

RobotsRules RobotsRules::disallow_all() {
  RobotsRules r;
  r.rules_.push_back(Rule{false, "/"});
  return r;
}

RobotsRules RobotsRules::parse(std::string_view text, std::string_view user_agent) {
  std::string token = nodes::to_lower(user_agent.substr(0, user_agent.find_first_of("/ ")));
  struct Group {
    std::vector<std::string> agents;
    RobotsRules rules;
  };
  std::vector<Group> groups;
  bool in_agents = false;  // consecutive user-agent lines share one group
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto end = text.find('\n', pos);
    std::string_view line = text.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
    pos = end == std::string_view::npos ? text.size() : end + 1;
    if (auto hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string key = nodes::to_lower(nodes::trim(line.substr(0, colon)));
    std::string_view value = nodes::trim(line.substr(colon + 1));
    if (key == "user-agent") {
      if (!in_agents) groups.emplace_back();
      groups.back().agents.push_back(nodes::to_lower(value));
      in_agents = true;
      continue;
    }
    in_agents = false;
    if (groups.empty()) continue;
    RobotsRules& r = groups.back().rules;
    if (key == "allow" || key == "disallow") {
      if (!value.empty()) r.rules_.push_back(Rule{key == "allow", canonical(value)});
    } else if (key == "crawl-delay") {
      double seconds = 0;
      auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
      if (ec == std::errc() && seconds > 0) r.crawl_delay_ = seconds;
    }
  }
  const Group* star = nullptr;
  const Group* ours = nullptr;
  for (const auto& g : groups) {
    for (const auto& a : g.agents) {
      if (a == "*" && !star) star = &g;
      if (a != "*" && !token.empty() && !ours && (a == token || token.find(a) == 0)) ours = &g;
    }
  }
  if (ours) return ours->rules;
  if (star) return star->rules;
  return RobotsRules();
}

bool RobotsRules::matches(std::string_view pattern, std::string_view path) {
  bool anchored = !pattern.empty() && pattern.back() == '$';
  if (anchored) pattern.remove_suffix(1);
  // Greedy-free wildcard match with backtracking on '*'.
  std::size_t p = 0, s = 0, star = std::string_view::npos, mark = 0;
  while (s < path.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = s;
    } else if (p < pattern.size() && pattern[p] == path[s]) {
      ++p;
      ++s;
    } else if (p == pattern.size() && !anchored) {
      return true;  // a prefix match
    } else if (star != std::string_view::npos) {
      p = star + 1;
      s = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

bool RobotsRules::allowed(std::string_view raw_path) const {
  if (rules_.empty()) return true;
  const std::string path = canonical(raw_path.empty() ? "/" : raw_path);
  const Rule* best = nullptr;
  for (const auto& r : rules_) {
    if (!matches(r.pattern, path)) continue;
    if (!best || r.pattern.size() > best->pattern.size() || (r.pattern.size() == best->pattern.size() && r.allow)) {
      best = &r;
    }
  }
  return !best || best->allow;
}

}  // namespace sluice::fetch
