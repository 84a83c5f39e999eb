#!/usr/bin/env bash
# Replays, at full scale, what a sender who controls DNS zones can throw at
# the SPF engine and the resolver, against a hostile DNS server on loopback
# (spf/attack_test.go), and prints each attack's figures:
#
#   - 1,500 records of 30,000 terms, and 1,500 of 60 KB of spaces, on random
#     subdomains (once 4.46 GB resident);
#   - exp= text of 15,000 and of 2,000 × %{H} with a 2,000-byte HELO (once a
#     90 MB explanation per check), and a domain-spec of 2,000 × %{h};
#   - 12,000 unique 60 KB TXT answers (once 1.09 GB of DNS cache);
#   - one dead resolver of two, with the daemon's timeouts, against a record
#     that needs 111 queries to pass (once temperror at 20 s);
#   - CNAME chains handed out one hop at a time (once 1,111 queries);
#   - 100 checks at once, each at every size limit, with no cache.
#
# Each test asserts its bound (heap from runtime/metrics, queries, verdicts)
# and fails if it does not hold. `go test ./...` runs the same tests at a
# small scale; CI runs this script. Everything stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
export SPFMILTER_ATTACK=full
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
go test -count=1 -v -timeout 10m -run '^TestAttack' ./spf/ >"$log" 2>&1 || status=$?
grep -E '^(=== RUN|--- (PASS|FAIL)|    attack_test\.go)' "$log" | grep -v '^=== RUN' || true
if [ "$status" -ne 0 ]; then
	cat "$log"
fi
exit "$status"
