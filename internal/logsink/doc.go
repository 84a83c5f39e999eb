// Package logsink writes the daemon's log lines to stderr without waking
// the Go runtime's monitor thread (see New).
package logsink
