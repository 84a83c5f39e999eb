//go:build !(linux && (amd64 || arm64))

package milter

import "net"

// Elsewhere the milter's connections are the standard library's net.Conn
// (see sock_linux.go).
const haveSockConn = false

type sockListener struct{}

func newSockListener(net.Listener) *sockListener { return nil }

func (*sockListener) accept() (net.Conn, error) { panic("milter: no sockConn on this system") }

func (*sockListener) Close() error { panic("milter: no sockConn on this system") }

type sockConn struct {
	net.Conn
	tcp bool
}

func (*sockConn) quickAck() {}
