#include "sluice/plugin.hpp"

#include <dlfcn.h>
#include <fmt/format.h>

#include <cstring>
#include <filesystem>

#include "sluice/spec.hpp"

namespace sluice {

std::string describe_abi(const PluginAbi& abi) {
  return fmt::format("sluice ABI {}, {}, {}, oneTBB interface {}, Record of {} bytes", abi.abi_version,
                     abi.compiler ? abi.compiler : "?", abi.stdlib ? abi.stdlib : "?", abi.tbb_interface_version,
                     abi.record_size);
}

namespace {

bool same(const char* a, const char* b) {
  return a && b && std::strcmp(a, b) == 0;
}

}  // namespace

std::string load_plugin(const std::string& path, Registry& registry) {
  const std::string who = fmt::format("plugin '{}'", path);
  // RTLD_LOCAL: two plugins may use the same internal names. The handle is kept for the life of the
  // process: node types hold code of the library.
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) return fmt::format("{}: cannot load it: {}", who, ::dlerror());
  // The same library again (--plugin and the pipeline's plugins list, or two spellings of one
  // path): dlopen returns the handle it already has, and its types are registered already.
  if (registry.has_plugin(handle)) return "";
  const auto* abi = static_cast<const PluginAbi*>(::dlsym(handle, "sluice_plugin_abi"));
  if (!abi) {
    return fmt::format("{}: no ABI record 'sluice_plugin_abi' (declare the plugin with SLUICE_PLUGIN from "
                       "<sluice/plugin.hpp>)",
                       who);
  }
  static const PluginAbi host = SLUICE_PLUGIN_THIS_BUILD;
  if (abi->abi_version != host.abi_version || !same(abi->compiler, host.compiler) ||
      !same(abi->stdlib, host.stdlib) || abi->tbb_interface_version != host.tbb_interface_version ||
      abi->record_size != host.record_size) {
    return fmt::format("{}: ABI mismatch: the plugin was built with {}; this sluice was built with {}", who,
                       describe_abi(*abi), describe_abi(host));
  }
  using Entry = void (*)(PluginRegistrar&);
  auto entry = reinterpret_cast<Entry>(::dlsym(handle, "sluice_register_nodes"));
  if (!entry) {
    return fmt::format("{}: no entry point 'sluice_register_nodes' (declare the plugin with SLUICE_PLUGIN from "
                       "<sluice/plugin.hpp>)",
                       who);
  }
  PluginRegistrar registrar;
  try {
    entry(registrar);
  } catch (const std::exception& e) {
    return fmt::format("{}: its entry point failed: {}", who, e.what());
  } catch (...) {
    return fmt::format("{}: its entry point failed", who);
  }
  for (const auto& type : registrar.types()) {
    if (registry.find(type.name)) {
      return fmt::format("{}: node type '{}' is already registered ({})", who, type.name, registry.origin(type.name));
    }
  }
  for (auto& type : registrar.types()) {
    try {
      registry.add(std::move(type), who);
    } catch (const std::invalid_argument& e) {
      return fmt::format("{}: {}", who, e.what());
    }
  }
  registry.add_plugin(handle);
  return "";
}

void load_pipeline_plugins(std::string_view text, const std::string& file, const LoadOptions& options,
                           Registry& registry, Diagnostics& diags) {
  Diagnostics ignored;  // the loader reports the file's own problems
  SpecNode root = parse_spec(text, file, options.env, ignored);
  const SpecNode* plugins = root.is_map() ? root.find("plugins") : nullptr;
  if (!plugins || !plugins->is_sequence()) return;
  const auto folder = std::filesystem::path(file).parent_path();
  for (const auto& item : plugins->items) {
    if (!item.is_scalar()) continue;
    std::filesystem::path path(item.scalar);
    if (path.is_relative()) path = folder / path;
    if (std::string error = load_plugin(path.lexically_normal().string(), registry); !error.empty()) {
      diags.error(item.where, error);
    }
  }
}

}  // namespace sluice
