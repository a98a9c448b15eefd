// A broken plugin: it has the ABI record but no entry point.
#include <sluice/plugin.hpp>

extern "C" SLUICE_PLUGIN_EXPORT const sluice::PluginAbi sluice_plugin_abi = SLUICE_PLUGIN_THIS_BUILD;
