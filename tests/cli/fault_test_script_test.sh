#!/usr/bin/env bash
# scripts/fault-test's verdict over ctest's results, with stand-in cmake and ctest (nothing is
# built or run): skipped entries fail the suite unless skipping was allowed explicitly, and the
# counts of entries run and skipped are printed.
#
#   tests/cli/fault_test_script_test.sh PATH/TO/scripts/fault-test
set -euo pipefail
script=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

# A ctest that prints the result lines given in $FAKE_CTEST_LINES and exits 0 (skips do not fail).
cat >"$tmp/ctest" <<'CTEST'
#!/usr/bin/env bash
printf '%b' "$FAKE_CTEST_LINES"
exit "${FAKE_CTEST_RC:-0}"
CTEST
chmod +x "$tmp/ctest"
mkdir -p "$tmp/build"

all_skipped='    Start 1: fault.Harness\n1/2 Test #1: fault.Harness ......................***Skipped   0.01 sec\n2/2 Test #2: fault.Crash ........................***Skipped   0.01 sec\n'
one_ran='1/2 Test #1: fault.Harness ......................   Passed    0.51 sec\n2/2 Test #2: fault.Crash ........................***Skipped   0.01 sec\n'
all_ran='1/2 Test #1: fault.Harness ......................   Passed    0.51 sec\n2/2 Test #2: fault.Crash ........................   Passed    3.20 sec\n'

# expect NAME WANT_RC WANT_TEXT [ENV...] -- [ARGS...]
expect() {
  local name=$1 want_rc=$2 want_text=$3
  shift 3
  local envs=()
  while [[ $# -gt 0 && "$1" != "--" ]]; do
    envs+=("$1")
    shift
  done
  [[ $# -gt 0 ]] && shift
  local out rc
  set +e
  out=$(env CMAKE=true CTEST="$tmp/ctest" BUILD_DIR="$tmp/build" REDLOCK_FAULT_ALLOW_SKIP= \
    "${envs[@]}" "$script" "$@" 2>&1)
  rc=$?
  set -e
  if [[ "$rc" -ne "$want_rc" ]]; then
    echo "FAIL $name: exit $rc, expected $want_rc; output:"
    echo "$out"
    failures=$((failures + 1))
  elif [[ "$out" != *"$want_text"* ]]; then
    echo "FAIL $name: output lacks '$want_text':"
    echo "$out"
    failures=$((failures + 1))
  else
    echo "ok   $name"
  fi
}

expect all-skipped-fails 1 "0 entries run, 2 skipped" "FAKE_CTEST_LINES=$all_skipped" --
expect all-skipped-says-how-to-allow 1 "--allow-skip" "FAKE_CTEST_LINES=$all_skipped" --
expect some-skipped-fails 1 "1 entries run, 1 skipped" "FAKE_CTEST_LINES=$one_ran" --
expect allowed-by-flag 0 "0 entries run, 2 skipped" "FAKE_CTEST_LINES=$all_skipped" -- --allow-skip
expect allowed-by-env 0 "0 entries run, 2 skipped" "FAKE_CTEST_LINES=$all_skipped" \
  REDLOCK_FAULT_ALLOW_SKIP=1 --
expect all-ran-passes 0 "2 entries run, 0 skipped" "FAKE_CTEST_LINES=$all_ran" --
expect nothing-ran-fails 1 "no entry ran" "FAKE_CTEST_LINES=" --
expect ctest-failure-is-kept 8 "2 entries run" "FAKE_CTEST_LINES=$all_ran" FAKE_CTEST_RC=8 --

if [[ "$failures" -ne 0 ]]; then
  echo "$failures case(s) failed"
  exit 1
fi
