#!/usr/bin/env bash
# Per-message CPU time, context switches and system calls of each spfmilter
# process in the Postfix load run (TCP and unix socket; with a baseline
# build, its two as well), counted by perf stat over the whole run. System
# call counts do not move with the machine's speed the way CPU time does,
# so they show what a change saves on a machine whose speed varies.
#
#   bash bench/postfix-syscalls.sh [/path/to/baseline/spfmilter]
#
# Needs what postfix-load.sh needs, and perf (Debian's linux-perf). Takes
# about 3 minutes with the default 3 rounds; SPFMILTER_LOAD_ROUNDS,
# SPFMILTER_LOAD_MESSAGES and SPFMILTER_LOAD_SERIAL_MESSAGES as there.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v perf >/dev/null || { echo "perf not found (Debian: apt-get install linux-perf)" >&2; exit 1; }
rounds=${SPFMILTER_LOAD_ROUNDS:-3}
msgs=${SPFMILTER_LOAD_MESSAGES:-1000}
serial=${SPFMILTER_LOAD_SERIAL_MESSAGES:-200}
baseline=${1:-}
work="$(mktemp -d)"
trap 'pkill -INT -f "perf stat -x, -o $work/" 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/spfmilter" .
bash bench/machine.sh
export SPFMILTER_LOAD=1 SPFMILTER_E2E_BIN="$work/spfmilter" SPFMILTER_LOAD_ROUNDS="$rounds"
if [[ -n "$baseline" ]]; then
	cp "$baseline" "$work/baseline"
	export SPFMILTER_LOAD_BASELINE="$work/baseline"
fi
go test -v -count=1 -timeout 30m -run '^TestPostfixLoad$' ./e2e/ >"$work/log" 2>&1 &
test=$!

# milter_pid BIN MODE: the process of BIN listening on MODE (inet or unix),
# without --dkim-rescue.
milter_pid() {
	local p
	for p in $(pgrep -f "^$1 --listen $2:" || true); do
		grep -q -- --dkim-rescue "/proc/$p/cmdline" 2>/dev/null || { echo "$p"; return; }
	done
}
setups=("spfmilter:$work/spfmilter:inet" "spfmilter:$work/spfmilter:unix")
[[ -n "$baseline" ]] && setups+=("baseline:$work/baseline:inet" "baseline:$work/baseline:unix")
events=task-clock,context-switches
for s in read epoll_pwait sendto write accept4 setsockopt close; do
	events+=",syscalls:sys_enter_$s"
done
for s in "${setups[@]}"; do
	IFS=: read -r name bin mode <<<"$s"
	pid=""
	for _ in $(seq 600); do # 2 minutes at most
		pid=$(milter_pid "$bin" "$mode")
		[[ -n "$pid" ]] && break
		kill -0 "$test" 2>/dev/null || break
		sleep 0.2
	done
	[[ -n "$pid" ]] || { cat "$work/log"; echo "no $name process on $mode" >&2; exit 1; }
	perf stat -x, -o "$work/$name-$mode.stat" -e "$events" -p "$pid" &
done
if ! wait "$test"; then
	cat "$work/log"
	exit 1
fi
sleep 1
pkill -INT -f "perf stat -x, -o $work/" || true
sleep 1
# The load run's own report, as postfix-load.sh prints it.
sed -n '/^Postfix load:/,/^--- /p' "$work/log" | grep -v -e '^ ' -e '^--- '
echo
# Every setup runs the warm-up (up to 100 messages) and each round's runs.
n=$((rounds * (msgs + serial) + (msgs < 100 ? msgs : 100)))
echo "Postfix load run, $rounds rounds: $n messages through each milter; per message:"
echo
printf '| %s ' milter "CPU ms" "context switches" read epoll_pwait sendto write accept4 setsockopt close
echo '|'
echo '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|'
for s in "${setups[@]}"; do
	IFS=: read -r name _ mode <<<"$s"
	awk -F, -v n="$n" -v label="$name, $([[ $mode == inet ]] && echo TCP || echo unix)" '
		$1 ~ /^[0-9.]+$/ { v[$3] = $1 }
		END {
			printf "| %s | %.3f | %.2f", label, v["task-clock"] / n, v["context-switches"] / n
			split("read epoll_pwait sendto write accept4 setsockopt close", sc, " ")
			for (i = 1; i <= 7; i++) printf " | %.2f", v["syscalls:sys_enter_" sc[i]] / n
			print " |"
		}' "$work/$name-$mode.stat"
done
