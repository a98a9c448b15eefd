#!/usr/bin/env bash
# A plugin author's path, for real: install sluice into a prefix, build the example plugin out of
# tree against it with find_package(sluice), and run a pipeline with the plugin it produced.
#   plugin_out_of_tree.sh SOURCE_DIR BUILD_DIR SLUICE_BINARY [SANITIZER_FLAGS]
# A plugin is built like the host that loads it: with SANITIZER_FLAGS when the host is sanitized.
set -euo pipefail
src=$1 build=$2 sluice=$3 sanitize=${4:-}
work=$(mktemp -d /tmp/sluice-plugin.XXXXXX)
trap 'rm -rf "$work"' EXIT

cmake --install "$build" --prefix "$work/prefix" >/dev/null
test -f "$work/prefix/include/sluice/plugin.hpp"
test -f "$work/prefix/lib/cmake/sluice/sluiceConfig.cmake"
cmake -S "$src/nodes/slugify" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_FLAGS="$sanitize" -DCMAKE_MODULE_LINKER_FLAGS="$sanitize" \
  -DCMAKE_PREFIX_PATH="$work/prefix" >"$work/configure.log" 2>&1 || { cat "$work/configure.log"; exit 1; }
cmake --build "$work/build" >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }

cat >"$work/p.yaml" <<YAML
pipeline: out_of_tree
nodes:
  - {id: src, type: source.list, urls: ["Out of Tree!"], field: name}
  - {id: slug, type: transform.slugify}
  - {id: out, type: sink.jsonl}
edges:
  - src -> slug -> out
YAML
out=$("$sluice" run -q --plugin "$work/build/sluice_slugify.so" "$work/p.yaml")
expected='{"name":"Out of Tree!","slug":"out-of-tree"}'
if [[ $out != "$expected" ]]; then
  echo "expected: $expected"
  echo "got:      $out"
  exit 1
fi
echo "out-of-tree plugin: ok"
