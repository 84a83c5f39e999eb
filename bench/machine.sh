#!/usr/bin/env bash
# Prints one line describing this machine, for the head of benchmark output.
printf '%s CPUs (%s), Linux %s, Postfix %s, %s; load average %s\n' \
	"$(nproc)" \
	"$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)" \
	"$(uname -r)" \
	"$(postconf -dh mail_version 2>/dev/null || echo '?')" \
	"$(date -u '+%Y-%m-%d %H:%M UTC')" \
	"$(cut -d' ' -f1-3 /proc/loadavg)"
