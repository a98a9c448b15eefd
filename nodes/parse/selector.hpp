// Selectors for parse.html: XPath 1.0 as written, or the common CSS subset translated to XPath.
#pragma once

#include <optional>
#include <string>
#include <string_view>

struct _xmlError;  // libxml2's xmlError

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
  // The attribute's name in lower case when that differs (an HTML page's parser writes names so),
  // tried when the element has none as written; else empty.
  std::string attribute_lower;
};

// The text of an XPath error libxml2 hands to an XPath context's structured error handler (which
// carries a code and an offset, no message): "invalid predicate at offset 4".
std::string xpath_error_text(const ::_xmlError* e);

// Before a thread's first use of libxml2: its one-time initialisation (xmlInitParser), and a quiet
// generic error handler for this thread (libxml2 would print some messages on stderr).
void init_libxml();

// Compiles `text` into a Selector. XPath when it starts with '/', '.', '(' or "xpath:"; otherwise
// CSS (an optional "css:" prefix is allowed): tag, *, .class, #id, [attr], [attr=v], [attr^=v],
// [attr$=v], [attr*=v], :nth-child(n), :first-child, :last-child, descendant (space) and child (>)
// combinators, selector lists (a, b), and a final ::text or ::attr(name). `relative` makes the
// XPath start from the context node (fields inside an item) instead of the document.
// The XPath is checked by libxml2 itself (compiled and evaluated once on an empty document).
// On error returns nullopt and sets `error`.
std::optional<Selector> compile_selector(std::string_view text, bool relative, std::string* error);

}  // namespace sluice::parse
