#!/usr/bin/env bash
# CI smoke pipelines: every pipeline under pipelines/ validates, pipelines/smoke/*.yaml together use
# every built-in node type, and they (with the quickstart) pass their expect: checks when run by
# `sluice test` in a fresh folder.
#   smoke.sh SOURCE_DIR SLUICE_BINARY
set -euo pipefail
src=$(realpath "$1") sluice=$(realpath "$2")
work=$(mktemp -d /tmp/sluice-smoke.XXXXXX)
trap 'rm -rf "$work"' EXIT

mapfile -t all < <(find "$src/pipelines" -name '*.yaml' | sort)
# Credentials a pipeline takes from the environment only, with no default in the file.
API_CLIENT_ID=placeholder API_CLIENT_SECRET=placeholder "$sluice" validate "${all[@]}"

missing=()
while read -r type _; do
  grep -qE "^\s*type: $type\s*$" "$src"/pipelines/smoke/*.yaml || missing+=("$type")
done < <("$sluice" nodes)
if ((${#missing[@]})); then
  echo "node types no smoke pipeline uses: ${missing[*]}"
  exit 1
fi

cd "$work"
"$sluice" test "$src"/pipelines/smoke/*.yaml "$src/pipelines/quickstart.yaml"
