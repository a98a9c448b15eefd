// Plugin nodes: node types in a shared library, loaded by `plugins: [path]` in a pipeline or by
// `sluice run --plugin PATH`.
//
// A plugin is built against an installed sluice (find_package(sluice), target sluice::engine) and
// declares itself with one macro:
//
//   #include <sluice/plugin.hpp>
//   void register_nodes(sluice::PluginRegistrar& r) { r.add(my_node_type()); }
//   SLUICE_PLUGIN(register_nodes)
//
// SLUICE_PLUGIN defines two extern "C" symbols: `sluice_plugin_abi`, a plain record of the build
// the plugin was compiled with (sluice ABI version, compiler, C++ standard library, oneTBB
// interface version, size of a Record), and `sluice_register_nodes`, the entry point. The loader
// reads the record first and refuses a plugin built differently, naming both sides, before any of
// its C++ code runs (PostgreSQL's magic block is the model). Plugins are never unloaded.
#pragma once

#include <oneapi/tbb/version.h>

#include <cstdint>
#include <string>
#include <vector>

#include "sluice/node.hpp"
#include "sluice/pipeline.hpp"
#include "sluice/registry.hpp"

namespace sluice {

// Bumped whenever a public header changes in a way that breaks compiled plugins (3: NodeContext::stop;
// 4: NodeContext::idle and PipelineSettings::abort_timeout, which a plugin built for them would read
// past the end of an older sluice's structs, and the virtual SinkNode::keeps_records; 5:
// NodeType::breaks_cycles and FieldTemplate's formats, which changed the layout of a NodeType a
// plugin registers and of a FieldTemplate it compiles; 6: NodeType::resumes_itself and RunState::Url::fields;
// 7: the virtual AsyncNode::saturated, RunState::FrontierState::origins and NodeContext::notice;
// 8: NodeContext::table; 9: NodeContext::received; 10: TransformNode::finish; 11: Value's Object alternative, an index
// a plugin's std::visit over the older variant does not know); 12: Permit's unfinished mark and the
// virtual PermitSource::on_release_unfinished).
inline constexpr std::uint32_t kPluginAbiVersion = 12;

#define SLUICE_PLUGIN_STR2(x) #x
#define SLUICE_PLUGIN_STR(x) SLUICE_PLUGIN_STR2(x)
#if defined(__clang__)
#define SLUICE_PLUGIN_COMPILER "clang " __clang_version__
#elif defined(__GNUC__)
#define SLUICE_PLUGIN_COMPILER "g++ " __VERSION__
#else
#define SLUICE_PLUGIN_COMPILER "unknown compiler"
#endif
#if defined(_LIBCPP_VERSION)
#define SLUICE_PLUGIN_STDLIB "libc++ " SLUICE_PLUGIN_STR(_LIBCPP_VERSION)
#elif defined(__GLIBCXX__)
#define SLUICE_PLUGIN_STDLIB "libstdc++ " SLUICE_PLUGIN_STR(__GLIBCXX__)
#else
#define SLUICE_PLUGIN_STDLIB "unknown standard library"
#endif

// The build a plugin (or the host) was compiled with. Plain C data only, so that it can be read
// safely from a library built in any way.
struct PluginAbi {
  std::uint32_t abi_version;
  const char* compiler;
  const char* stdlib;
  std::uint32_t tbb_interface_version;
  std::uint32_t record_size;
};

// This translation unit's build.
#define SLUICE_PLUGIN_THIS_BUILD                                                                     \
  ::sluice::PluginAbi {                                                                              \
    ::sluice::kPluginAbiVersion, SLUICE_PLUGIN_COMPILER, SLUICE_PLUGIN_STDLIB, TBB_INTERFACE_VERSION, \
        static_cast<std::uint32_t>(sizeof(::sluice::Record))                                         \
  }

// "sluice ABI 1, g++ 12.2.0, libstdc++ 20230528, oneTBB interface 12080, Record of 152 bytes"
std::string describe_abi(const PluginAbi& abi);

// What a plugin's entry point gets: registers the plugin's node types. Nothing is registered
// unless every type is accepted.
class PluginRegistrar {
 public:
  void add(NodeType type) { types_.push_back(std::move(type)); }
  std::vector<NodeType>& types() { return types_; }

 private:
  std::vector<NodeType> types_;
};

// Main thread. Loads the plugin at `path` (never unloaded) and adds its node types to `registry`.
// Returns an empty string on success, else the reason, starting with "plugin '<path>': ": it cannot
// be loaded, it has no ABI record or no entry point, its ABI record differs from this sluice's, a
// type name is already registered, or the entry point threw.
std::string load_plugin(const std::string& path, Registry& registry);

// Main thread, before load_pipeline_text(): loads the plugins pipeline `text` names in its
// `plugins:` list (paths relative to the folder of `file`) into `registry`. A plugin that cannot be
// used is an error at its position in the file. Other problems of the file are left to the loader.
void load_pipeline_plugins(std::string_view text, const std::string& file, const LoadOptions& options,
                           Registry& registry, Diagnostics& diags);

}  // namespace sluice

// Exported even when the plugin hides its other symbols (-fvisibility=hidden).
#define SLUICE_PLUGIN_EXPORT __attribute__((visibility("default")))

#define SLUICE_PLUGIN(register_function)                                                               \
  extern "C" SLUICE_PLUGIN_EXPORT const ::sluice::PluginAbi sluice_plugin_abi = SLUICE_PLUGIN_THIS_BUILD; \
  extern "C" SLUICE_PLUGIN_EXPORT void sluice_register_nodes(::sluice::PluginRegistrar& registrar) {      \
    register_function(registrar);                                                                       \
  }
