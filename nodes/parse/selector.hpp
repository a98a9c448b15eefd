// Selectors for parse.html: XPath 1.0 as written, or the common CSS subset translated to XPath.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace sluice::parse {

struct Selector {
  enum class Pick {
    string_value,  // the node's string value (all its text, whitespace collapsed)
    own_text,      // CSS ::text — the element's own text nodes
    attribute,     // CSS ::attr(name)
  };
  std::string xpath;
  Pick pick = Pick::string_value;
  std::string attribute;
};

// Compiles `text` into a Selector. XPath when it starts with '/', '.', '(' or "xpath:"; otherwise
// CSS (an optional "css:" prefix is allowed): tag, *, .class, #id, [attr], [attr=v], [attr^=v],
// [attr$=v], [attr*=v], :nth-child(n), :first-child, :last-child, descendant (space) and child (>)
// combinators, selector lists (a, b), and a final ::text or ::attr(name). `relative` makes the
// XPath start from the context node (fields inside an item) instead of the document.
// On error returns nullopt and sets `error`.
std::optional<Selector> compile_selector(std::string_view text, bool relative, std::string* error);

}  // namespace sluice::parse
