#!/usr/bin/env bash
# Runs the Go benchmarks of the SPF engine, the DNS cache, the milter session
# and the metrics observers, and summarises them with benchstat.
#
#   bench/go-bench.sh              # writes bench/out/new.txt, prints a summary
#   bench/go-bench.sh OLD.txt      # also compares against an earlier run
#
# COUNT (default 10) and BENCHTIME (default 1s) tune the run. Everything runs
# in-process or on loopback; nothing leaves the machine.
set -euo pipefail
cd "$(dirname "$0")/.."

count="${COUNT:-10}"
benchtime="${BENCHTIME:-1s}"
out=bench/out
mkdir -p "$out"

go test -run '^$' -bench . -benchmem -count "$count" -benchtime "$benchtime" \
	./spf/ ./spf/resolver/ ./milter/ ./metrics/ | tee "$out/new.txt"

benchstat="$(go env GOPATH)/bin/benchstat"
if [ ! -x "$benchstat" ]; then
	echo "benchstat not found: go install golang.org/x/perf/cmd/benchstat@latest" >&2
	exit 0
fi
if [ $# -ge 1 ]; then
	"$benchstat" "$1" "$out/new.txt"
else
	"$benchstat" "$out/new.txt"
fi
