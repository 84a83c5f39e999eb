#!/usr/bin/env bash
# The Postfix load comparison: smtp-source → Postfix → smtp-sink on loopback,
# one message per SMTP session, without a milter, with spfmilter over TCP,
# with spfmilter over a unix socket and with pyspf-milter, all against the
# same DNS server, in interleaved rounds; with 20 sessions also spfmilter
# under --dkim-rescue mailfrom, for passing senders and for failing senders
# whose DKIM signature rescues each message. Prints the median messages per
# second, the ratio to no milter, the milters' CPU time per message, and the
# time each milter adds per message with sessions one at a time.
#
#   bash bench/postfix-load.sh
#
# Needs root, Postfix (smtp-source, smtp-sink) and pyspf-milter (see
# .ci/install-deps). Not part of CI; takes about 5 minutes. Tune with
# SPFMILTER_LOAD_MESSAGES (per run, default 1000), SPFMILTER_LOAD_SESSIONS
# (20), SPFMILTER_LOAD_SIZE (2048 bytes), SPFMILTER_LOAD_ROUNDS (5) and
# SPFMILTER_LOAD_SERIAL_MESSAGES (200). The milter is built without the race
# detector. SPFMILTER_LOAD_BASELINE=/path/to/spfmilter adds another build
# (over TCP and a unix socket) to the same rounds, for before/after figures
# under the same machine load.
set -euo pipefail
cd "$(dirname "$0")/.."
export SPFMILTER_LOAD=1
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
bash bench/machine.sh
if ! go test -v -count=1 -timeout 60m -run '^TestPostfixLoad$' ./e2e/ >"$log" 2>&1; then
	cat "$log"
	exit 1
fi
# The report: from its title to the end of the last table, without the
# processes' logs that -v adds.
sed -n '/^Postfix load:/,/^--- /p' "$log" | grep -v -e '^ ' -e '^--- '
