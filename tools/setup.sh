#!/usr/bin/env bash
# Installs the Debian 12 packages sluice needs to build, test and benchmark. Quick when everything
# is present: it checks each package with dpkg -s and runs apt-get only for the missing ones.
set -euo pipefail

# Build and test: the compiler, CMake, and the libraries the issues name; nginx serves HTTP/2 to the
# fetch test of it (the fixture server speaks HTTP/1.1 only) and pages to the benchmarks; tzdata
# (Priority: required, so present on any Debian 12) has the zones of the parse nodes' time_zone.
packages=(
  build-essential cmake ninja-build pkg-config
  libtbb-dev libcurl4-openssl-dev libsqlite3-dev libyaml-cpp-dev libfmt-dev catch2
  libcli11-dev libspdlog-dev libcpp-httplib-dev libssl-dev zlib1g-dev libxml2-dev libre2-dev libsimdjson-dev graphviz
  nginx tzdata
)
# `setup.sh --bench` adds what the benchmarks under bench/ use.
if [[ ${1:-} == --bench ]]; then
  packages+=(nlohmann-json3-dev valgrind)
fi
# `setup.sh --fuzz` adds clang and its libFuzzer runtime, for tools/fuzz.sh.
if [[ ${1:-} == --fuzz ]]; then
  packages+=(clang libclang-rt-14-dev)
fi
# `setup.sh --soak` adds the sqlite3 shell and jq, with which tools/soak.sh counts what its runs
# stored and wrote.
if [[ ${1:-} == --soak ]]; then
  packages+=(sqlite3 jq)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "setup: all ${#packages[@]} packages present"
