#!/usr/bin/env bash
# A bounded load run through a private Postfix on loopback: smtp-source sends
# the same batch (2,000 messages of 2 KiB over 20 sessions by default) without
# a milter, with spfmilter enforcing (--reject fail, passing senders), with
# spfmilter marking only (failing senders), and with spfmilter enforcing under
# --dkim-rescue mailfrom (passing senders, then failing senders whose DKIM
# signature rescues each message), and prints the messages per second Postfix
# accepted in each case.
#
# Needs root, Postfix and smtp-sink/smtp-source (see .ci/install-deps). Not
# part of CI. Tune with SPFMILTER_LOAD_MESSAGES, SPFMILTER_LOAD_SESSIONS and
# SPFMILTER_LOAD_SIZE. The milter is built without the race detector.
set -euo pipefail
cd "$(dirname "$0")/.."
export SPFMILTER_LOAD=1
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! go test -v -count=1 -timeout 30m -run '^TestPostfixLoad$' ./e2e/ >"$log" 2>&1; then
	cat "$log"
	exit 1
fi
grep 'msgs/s' "$log" | grep -v '^ '
