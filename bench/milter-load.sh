#!/usr/bin/env bash
# The milter-protocol load run: builds spfmilter and bench/miltload, starts
# the daemon against a DNS server of miltload's own on loopback and runs full
# transactions (one connection each, as Postfix opens one per SMTP session;
# the client offers and batches as Postfix does, -mta plain answers every
# step) at concurrency 1, 16, 64 and 256, then holds 1,000 idle connections.
# Prints transactions per second, p50/p99/max latency, the daemon's peak RSS
# and CPU per transaction, and its RSS and goroutines at rest, with the idle
# connections, and after them.
#
#   bash bench/milter-load.sh [miltload flags]     # e.g. -c 64 -n 50000 -d 20s
#
# Each level is bounded by -n transactions (30,000) and -d time (10s). The
# load generator shares the machine with the daemon: its own CPU per
# transaction is printed beside the daemon's.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$(mktemp -d)"
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/spfmilter" .
go build -o "$bin/miltload" ./bench/miltload
bash bench/machine.sh
"$bin/miltload" -bin "$bin/spfmilter" "$@"
