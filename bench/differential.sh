#!/usr/bin/env bash
# Runs the differential test (e2e/differential_test.go) on more worlds than
# CI does: random SPF worlds, each served by a DNS server on loopback and
# checked by `spfmilter check`, pyspf and Mail::SPF.
#
#   bash bench/differential.sh [WORLDS] [SEED]    # default: 1000 worlds, seed 1
#
# Prints the agreement rates and the known-difference counts; the whole test
# log goes to bench/out/differential.log and every unexplained difference,
# with its world, to bench/out/differential.txt. A world is reproduced with
# SPFMILTER_DIFF_SEED=SEED SPFMILTER_DIFF_WORLD=N (just that world) or served
# for a while with SPFMILTER_DIFF_SERVE=N (TestDifferentialServe). Needs
# python3-spf, python3-dnspython and libmail-spf-perl.
set -euo pipefail
cd "$(dirname "$0")/.."

worlds="${1:-1000}"
seed="${2:-1}"
out=bench/out
mkdir -p "$out"

status=0
SPFMILTER_DIFF_WORLDS="$worlds" SPFMILTER_DIFF_SEED="$seed" SPFMILTER_DIFF_OUT="$PWD/$out/differential.txt" \
	go test -count=1 -run '^TestDifferential$' -v -timeout 90m ./e2e/ >"$out/differential.log" 2>&1 || status=$?
grep -E 'differential: |^(--- |ok|FAIL)' "$out/differential.log" | sed -E 's/^ +differential_test.go:[0-9]+: //'
if [ "$status" -ne 0 ]; then
	echo "differential: failed (status $status); see $out/differential.log and $out/differential.txt" >&2
fi
exit "$status"
