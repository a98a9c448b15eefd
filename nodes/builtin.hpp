// Declarations of the built-in node types; registered in one explicit list in builtin.cpp.
#pragma once

#include "sluice/node.hpp"

namespace sluice::nodes {

NodeType source_list_type();
NodeType source_sqlite_type();
NodeType source_csv_type();
NodeType source_jsonl_type();
NodeType filter_type();
NodeType set_type();
NodeType sink_jsonl_type();
NodeType sink_csv_type();
NodeType test_fail_type();
NodeType limit_type();
NodeType fetch_type();
NodeType store_sqlite_type();
NodeType parse_html_type();
NodeType parse_json_type();
NodeType parse_regex_type();
NodeType frontier_type();
NodeType save_type();
NodeType drop_type();
NodeType distinct_type();

// A CSV delimiter (source.csv, sink.csv): one character, not a quote or a line break.
std::string check_csv_delimiter(const Value& v);

// A {field} template (fetch's body, a frontier's key, parse.json's next_url): what is wrong with it,
// or "" when it compiles.
std::string check_template(const Value& v);

// The standard ports of a transform: in, out, error.
std::vector<PortSpec> transform_ports();

}  // namespace sluice::nodes
