#!/usr/bin/env bash
# The soak run: MESSAGES (default 100,000) messages through a private Postfix
# and spfmilter on loopback, one per SMTP session from 16 clients, with DNS
# faults in the mix (timeouts, SERVFAIL, truncated UDP answers, 1 s TTLs), a
# SIGHUP to the milter every second and two SIGTERMs (each followed by a new
# milter on the same port) under load. Fails unless every message is
# accounted for: delivered to smtp-sink exactly once with the right verdict,
# or refused with the code its sender calls for (and logged by Postfix), or
# deferred by Postfix while the milter restarts.
#
#   bash bench/soak.sh [MESSAGES]
#
# Needs root, Postfix and smtp-sink. SPFMILTER_SOAK_CLIENTS sets the number
# of parallel SMTP clients. CI runs the same test with 3,000 messages.
set -euo pipefail
cd "$(dirname "$0")/.."
messages="${1:-100000}"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
bash bench/machine.sh
if ! SPFMILTER_SOAK="$messages" go test -v -count=1 -timeout 4h -run '^TestPostfixSoak$' ./e2e/ >"$log" 2>&1; then
	# The failures and the summary, without the processes' logs.
	grep -v -e '^        ' -e '^    proc_test.go' "$log"
	exit 1
fi
sed -n '/^soak:/,/^lost /p' "$log"
