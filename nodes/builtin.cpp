#include "builtin.hpp"

#include "sluice/registry.hpp"
#include "sluice/template.hpp"

namespace sluice {

namespace nodes {

std::string check_template(const Value& v) {
  std::string error;
  return FieldTemplate::compile(v.to_text(), &error) ? "" : error;
}

std::vector<PortSpec> transform_ports() {
  return {
      {"in", PortDirection::input, "records to process"},
      {"out", PortDirection::output, "processed records"},
      {"error", PortDirection::output, "records that failed, with the error attached (on_error: route)"},
  };
}

}  // namespace nodes

void register_builtin_nodes(Registry& registry) {
  registry.add(nodes::source_list_type());
  registry.add(nodes::source_sqlite_type());
  registry.add(nodes::source_csv_type());
  registry.add(nodes::source_jsonl_type());
  registry.add(nodes::filter_type());
  registry.add(nodes::set_type());
  registry.add(nodes::sink_jsonl_type());
  registry.add(nodes::sink_csv_type());
  registry.add(nodes::limit_type());
  registry.add(nodes::fetch_type());
  registry.add(nodes::store_sqlite_type());
  registry.add(nodes::parse_html_type());
  registry.add(nodes::parse_json_type());
  registry.add(nodes::parse_regex_type());
  registry.add(nodes::frontier_type());
  registry.add(nodes::save_type());
  registry.add(nodes::drop_type());
  registry.add(nodes::distinct_type());
  registry.add(nodes::test_fail_type());
}

}  // namespace sluice
