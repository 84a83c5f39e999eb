// Package e2e runs the spfmilter binary behind real MTAs (Postfix and
// Sendmail) on the loopback interface, with a test DNS server, and checks what
// arrives at the receiving end.
//
// Every MTA runs in a private mount and UTS namespace with its own /etc/hosts,
// /etc/resolv.conf (pointing at the test DNS server on a 127.x address, port
// 53) and a fully qualified host name, so that no query leaves loopback. The
// tests need root for that; without the MTAs (or without root) they skip, and
// with CI=true they fail instead.
//
// TestDifferential (differential_test.go) runs `spfmilter check` beside the
// reference SPF implementations, pyspf and Mail::SPF, on random SPF worlds
// (diffworld_test.go) served on loopback, and fails on any difference not
// listed in testdata/differential/known-differences.yaml.
package e2e
