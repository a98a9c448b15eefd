#!/usr/bin/env bash
# Runs the test suite under ThreadSanitizer (the `tsan` preset); CI's last stage (.ci/run). It
# needs a oneTBB built with TSan, because Debian's libtbb is not instrumented and TSan cannot see a
# task handed from one thread to another inside it (every flow-graph message would be reported as a
# race).
#
#   bash tools/tsan.sh                  # the whole suite (about 5 minutes of tests on two cores; 20 with
#                                       # oneTBB and the tsan build from scratch)
#   bash tools/tsan.sh -R 'limit|stop'  # arguments go to ctest
#
# The instrumented oneTBB is built once into build/tsan-tbb from Debian's source package of the
# libtbb12 version installed (apt-get source, with a deb-src entry for that one command), and the
# tests run with it on LD_LIBRARY_PATH. TSan's reports go to build/tsan-reports/ (one file per
# process that had any); the script ends non-zero when there is one. Tests that fail without a
# report fail on time under TSan's slowdown (5-15x): they are listed, not counted as findings.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD

tbb=$root/build/tsan-tbb
if [[ ! -e $tbb/lib/libtbb.so.12 ]]; then
  version=$(dpkg-query -W -f='${source:Version}' libtbb12) || { echo "tsan: libtbb12 is not installed (tools/setup.sh)"; exit 1; }
  mkdir -p "$tbb/src" && cd "$tbb/src" || exit 1
  if [[ ! -e onetbb_${version#*:}.dsc ]]; then
    list=/etc/apt/sources.list.d/sluice-tsan-src.sources
    printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' > "$list"
    apt-get update -qq && apt-get source -qq --download-only "onetbb=$version"
    rc=$?
    rm -f "$list"
    apt-get update -qq
    ((rc == 0)) || { echo "tsan: could not download Debian's source of onetbb $version"; exit 1; }
  fi
  rm -rf tree && dpkg-source -x "onetbb_${version#*:}.dsc" tree > /dev/null || exit 1
  cmake -S tree -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTBB_TEST=OFF -DTBB_EXAMPLES=OFF \
    -DTBB_STRICT=OFF -DTBBMALLOC_BUILD=OFF -DTBB_SANITIZE=thread -DCMAKE_INSTALL_PREFIX="$tbb" > /dev/null &&
    cmake --build build && cmake --install build > /dev/null || { echo "tsan: building oneTBB failed"; exit 1; }
  cd "$root" || exit 1
fi

cmake --preset tsan > /dev/null && cmake --build --preset tsan || exit 1

reports=$root/build/tsan-reports
rm -rf "$reports" && mkdir -p "$reports"
LD_LIBRARY_PATH=$tbb/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} \
TSAN_OPTIONS="halt_on_error=0:second_deadlock_stack=1:log_path=$reports/tsan:suppressions=$root/tests/tsan.supp" \
  ctest --test-dir build/tsan -j2 --timeout 900 "$@" > build/tsan-ctest.log 2>&1
grep -E "tests passed|\(Failed\)|\(Timeout\)" build/tsan-ctest.log | sed 's/^/tsan: /'

shopt -s nullglob
found=("$reports"/tsan.*)
if ((${#found[@]})); then
  echo "tsan: ${#found[@]} process(es) with reports in $reports:"
  grep -h "^SUMMARY" "${found[@]}" | sort | uniq -c | sort -rn | sed 's/^/tsan: /'
  exit 1
fi
echo "tsan: no ThreadSanitizer report (build/tsan-ctest.log has the tests' output)"
