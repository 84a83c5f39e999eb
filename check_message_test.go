package main

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	msgdkim "github.com/emersion/go-msgauth/dkim"

	"github.com/spfmilter/spfmilter/spf/spftest"
)

// signedFile writes a message from alice@example.org signed by d with key,
// LF line ends as a stored message has, and returns its path.
func signedFile(t *testing.T, key *rsa.PrivateKey, d string, alter bool) string {
	t.Helper()
	msg := "From: Alice <alice@example.org>\r\nTo: bob@example.com\r\nSubject: forwarded\r\n\r\nHello Bob.\r\n"
	var out bytes.Buffer
	err := msgdkim.Sign(&out, strings.NewReader(msg), &msgdkim.SignOptions{
		Domain: d, Selector: "sel", Signer: key,
		HeaderCanonicalization: msgdkim.CanonicalizationRelaxed,
		BodyCanonicalization:   msgdkim.CanonicalizationRelaxed,
	})
	if err != nil {
		t.Fatal(err)
	}
	data := strings.ReplaceAll(out.String(), "\r\n", "\n")
	if alter {
		data = strings.Replace(data, "Hello Bob.", "Hello Eve.", 1)
	}
	p := filepath.Join(t.TempDir(), "msg.eml")
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func keyWorld(t *testing.T) (*spftest.Resolver, *rsa.PrivateKey) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	w := testWorld()
	// Longer than 255 bytes: published as several character-strings.
	w.TXT["sel._domainkey.example.org"] = []string{"v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)}
	return w, k
}

func TestCheckMessage(t *testing.T) {
	w, key := keyWorld(t)
	srv := spftest.NewServer(t, w)
	// 198.51.100.7 is not in example.org's record: SPF fail, as for a
	// forwarder.
	client := []string{"--ip", "198.51.100.7", "--helo", "fwd.example.net", "--sender", "alice@example.org", "--reject", "fail"}
	good := signedFile(t, key, "example.org", false)

	m := runCheckJSON(t, srv, append(client, "--dkim-rescue", "mailfrom", "--message", good)...)
	hdrs, _ := m["headers"].(map[string]any)
	ar, _ := hdrs["Authentication-Results"].(string)
	rs, _ := hdrs["Received-SPF"].(string)
	sigs, _ := m["dkim"].([]any)
	if m["action"] != "accept" || m["reply"] != "" || m["rescue"] != "rescued" || len(sigs) != 1 {
		t.Fatalf("rescued: action %v reply %v rescue %v dkim %v", m["action"], m["reply"], m["rescue"], m["dkim"])
	}
	if s, _ := sigs[0].(map[string]any); s["result"] != "pass" || s["domain"] != "example.org" || s["selector"] != "sel" {
		t.Errorf("signature %v", s)
	}
	if !strings.Contains(ar, "spf=fail smtp.mailfrom=alice@example.org") || !strings.Contains(ar, "dkim=pass header.b=") ||
		!strings.HasPrefix(rs, "fail ") || !strings.Contains(rs, "dkim-rescue=example.org") {
		t.Errorf("headers:\n%s\n%s", ar, rs)
	}
	// The key is one more TXT query through the same resolver.
	plain := runCheckJSON(t, srv, append(client, "--dkim-rescue", "mailfrom")...)
	if q, p := m["dns_queries"].(json.Number), plain["dns_queries"].(json.Number); q.String() == p.String() {
		t.Errorf("dns_queries %v with the key lookup, %v without", q, p)
	}

	m = runCheckJSON(t, srv, append(client, "--dkim-rescue", "mailfrom", "--message", signedFile(t, key, "example.org", true))...)
	if reply, _ := m["reply"].(string); m["action"] != "reject" || m["rescue"] != "not_rescued" || !strings.HasPrefix(reply, "550 5.7.23 ") {
		t.Errorf("altered: action %v rescue %v reply %q", m["action"], m["rescue"], reply)
	}

	m = runCheckJSON(t, srv, append(client, "--message", good)...)
	if sigs, _ := m["dkim"].([]any); m["action"] != "reject" || m["rescue"] != "" || len(sigs) != 0 {
		t.Errorf("off: action %v rescue %v dkim %v", m["action"], m["rescue"], m["dkim"])
	}

	var stdout, stderr bytes.Buffer
	args := append([]string{"check", "--resolver", srv.Addr(), "--dkim-rescue", "from", "--message", good}, client...)
	if status := run(args, &stdout, &stderr); status != 0 {
		t.Fatalf("status %d, stderr %q", status, stderr.String())
	}
	for _, want := range []string{"dkim:     pass d=example.org s=sel b=", "rescue:   rescued\n",
		"action:   accept (mailfrom fail rescued by the DKIM signature of example.org)\n"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, stdout.String())
		}
	}
}

func TestCheckMessageMissingFile(t *testing.T) {
	var stdout, stderr bytes.Buffer
	status := run([]string{"check", "--ip", "192.0.2.1", "--message", filepath.Join(t.TempDir(), "none")}, &stdout, &stderr)
	if status != exitUsage || !strings.Contains(stderr.String(), "flag --message:") {
		t.Errorf("status %d, stderr %q", status, stderr.String())
	}
}
