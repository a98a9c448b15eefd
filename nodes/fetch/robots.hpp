// robots.txt (RFC 9309): the group that applies to a user agent, and whether it allows a path.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::fetch {

class RobotsRules {
 public:
  // Rules of the group for `user_agent` (matched by its product token, e.g. "sluice" in
  // "sluice/0.1"), else of the "*" group, else none (everything allowed).
  static RobotsRules parse(std::string_view text, std::string_view user_agent);
  static RobotsRules allow_all() { return RobotsRules(); }
  static RobotsRules disallow_all();

  // `path` is the URL's path and query ("/a/b?c=d"). The longest matching rule wins; Allow wins a tie.
  // Rules and path are compared in canonical() form.
  bool allowed(std::string_view path) const;
  // A path or rule as RFC 9309 compares them: bytes beyond ASCII percent-encoded, %-escapes of
  // unreserved characters decoded, hex digits upper-case.
  static std::string canonical(std::string_view path);
  // No rules at all: every path is allowed, whatever it is.
  bool allows_everything() const { return rules_.empty(); }
  // Crawl-delay of the group, in seconds.
  std::optional<double> crawl_delay() const { return crawl_delay_; }

 private:
  struct Rule {
    bool allow;
    std::string pattern;  // may contain * and end with $
  };
  static bool matches(std::string_view pattern, std::string_view path);
  std::vector<Rule> rules_;
  std::optional<double> crawl_delay_;
};

}  // namespace sluice::fetch
