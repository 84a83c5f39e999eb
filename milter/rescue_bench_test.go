package milter

import (
	"bytes"
	"crypto/rsa"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	msgdkim "github.com/emersion/go-msgauth/dkim"
)

// benchMessage is a message of about 2 KiB from alice@<from>, signed by
// fail.test when key is not nil.
func benchMessage(b *testing.B, from string, key *rsa.PrivateKey) []byte {
	msg := "From: alice@" + from + "\r\nTo: bob@example.test\r\nSubject: bench\r\nMessage-Id: <1@client.example>\r\n\r\n" +
		strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n", 32)
	if key == nil {
		return []byte(msg)
	}
	var out bytes.Buffer
	err := msgdkim.Sign(&out, strings.NewReader(msg), &msgdkim.SignOptions{
		Domain: "fail.test", Selector: "sel", Signer: key,
		HeaderCanonicalization: msgdkim.CanonicalizationRelaxed,
		BodyCanonicalization:   msgdkim.CanonicalizationRelaxed,
	})
	if err != nil {
		b.Fatal(err)
	}
	return out.Bytes()
}

// rescueSteps is one SMTP session as Postfix drives it with NR_CONN,
// NR_HELO, NOHREPL and NR_BODY offered: MAIL FROM <alice@from>, the header
// fields of msg, its body when body is set (the body stage negotiated),
// the end of message.
func rescueSteps(from string, msg []byte, body bool) [][]byte {
	neg := binary.BigEndian.AppendUint32(nil, 6)
	neg = binary.BigEndian.AppendUint32(neg, 0x1ff)
	neg = binary.BigEndian.AppendUint32(neg, 0x1fffff)
	hdr, b := headerPackets(msg)
	end := hdr
	if body {
		end = append(end, pkt('B', string(b))...)
	}
	end = append(end, pkt('E')...)
	return [][]byte{
		pkt('O', string(neg)),
		append(append(pkt('C', cstr("client.example"), "4", "\x0f\xb9", cstr(clientA)), pkt('H', cstr("helo.pass.test"))...),
			pkt('M', cstr("<alice@"+from+">"))...),
		end,
	}
}

// BenchmarkPostfixSessionRescue is BenchmarkPostfixSession's session with
// dkim_rescue off and on: a passing sender (on: the body comes and is
// dropped), and a failing sender whose message is signed by its domain
// (rescued) or altered after signing (refused at end of message).
func BenchmarkPostfixSessionRescue(b *testing.B) {
	w := rescueWorld(b, "fail.test")
	w.NoRecord = true
	key := signingKey(b)
	signed := benchMessage(b, "fail.test", key)
	altered := bytes.Replace(signed, []byte("0123"), []byte("3210"), 1)
	for _, tc := range []struct {
		name string
		mode Rescue
		from string
		msg  []byte
	}{
		{"off/pass", RescueOff, "pass.test", benchMessage(b, "pass.test", nil)},
		{"mailfrom/pass", RescueMailFrom, "pass.test", benchMessage(b, "pass.test", nil)},
		{"mailfrom/fail rescued", RescueMailFrom, "fail.test", signed},
		{"mailfrom/fail refused", RescueMailFrom, "fail.test", altered},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := rescueConfig(w, tc.mode)
			h := start(b, Options{Config: cfg, IdleTimeout: time.Minute, MaxConnections: 100})
			steps := rescueSteps(tc.from, tc.msg, cfg.rescueOn())
			mailFrom := func(i int, code byte) {
				if i == 1 && code != 'c' {
					b.Fatalf("MAIL FROM answered %q", code)
				}
			}
			run := func() {
				c, _ := benchExchange(b, h.addr, steps, nil, mailFrom)
				c.Close()
			}
			benchSessions(b, run)
		})
	}
}
