// A broken plugin: its ABI record says it was built by another toolchain.
#include <sluice/plugin.hpp>

extern "C" SLUICE_PLUGIN_EXPORT const sluice::PluginAbi sluice_plugin_abi = {99, "g++ 9.9.9", "libstdc++ 20190101",
                                                                              11000, 8};
extern "C" SLUICE_PLUGIN_EXPORT void sluice_register_nodes(sluice::PluginRegistrar&) {}
