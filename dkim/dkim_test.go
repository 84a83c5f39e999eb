package dkim_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
	"time"

	msgdkim "github.com/emersion/go-msgauth/dkim"
	"github.com/miekg/dns"

	"github.com/spfmilter/spfmilter/dkim"
	"github.com/spfmilter/spfmilter/spf"
	"github.com/spfmilter/spfmilter/spf/resolver"
	"github.com/spfmilter/spfmilter/spf/spftest"
)

// A key pair and its DNS record, made once: RSA key generation is slow.
var (
	rsaKey    = mustRSA()
	edPub, ed = mustEd25519()
)

func mustRSA() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
}

func mustEd25519() (ed25519.PublicKey, ed25519.PrivateKey) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	return pub, priv
}

func rsaRecord(k *rsa.PrivateKey) string {
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		panic(err)
	}
	return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
}

func edRecord() string {
	return "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(edPub)
}

const plain = "From: Alice <alice@example.org>\r\n" +
	"To: bob@example.com\r\n" +
	"Subject: forwarded\r\n" +
	"Date: Tue, 1 Dec 2026 10:00:00 +0000\r\n" +
	"Message-ID: <1@example.org>\r\n" +
	"\r\n" +
	"Hello Bob,\r\n" +
	"this came through a forwarder.\r\n"

// sign returns msg with a DKIM-Signature by domain and selector prepended.
func sign(t testing.TB, msg, domain, selector string, signer crypto.Signer) string {
	t.Helper()
	var out bytes.Buffer
	err := msgdkim.Sign(&out, strings.NewReader(msg), &msgdkim.SignOptions{
		Domain:                 domain,
		Selector:               selector,
		Signer:                 signer,
		HeaderCanonicalization: msgdkim.CanonicalizationRelaxed,
		BodyCanonicalization:   msgdkim.CanonicalizationRelaxed,
		HeaderKeys:             []string{"From", "To", "Subject", "Date", "Message-ID"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// world publishes the RSA key as sel._domainkey.<d> for each d, the
// Ed25519 key as ed._domainkey.<d>.
func world(domains ...string) *spftest.Resolver {
	w := &spftest.Resolver{TXT: map[string][]string{}, Fail: map[string]error{}}
	for _, d := range domains {
		w.TXT["sel._domainkey."+d] = []string{rsaRecord(rsaKey)}
		w.TXT["ed._domainkey."+d] = []string{edRecord()}
	}
	return w
}

func verify(t testing.TB, r dkim.Resolver, msg string) dkim.Outcome {
	t.Helper()
	v := &dkim.Verifier{Resolver: r}
	return v.Verify(context.Background(), []byte(msg))
}

func results(o dkim.Outcome) string {
	var s []string
	for _, sig := range o.Signatures {
		s = append(s, string(sig.Result)+" d="+sig.Domain+" s="+sig.Selector)
	}
	return strings.Join(s, ", ")
}

func TestVerifyAlignment(t *testing.T) {
	w := world("example.org", "mail.example.org", "forwarder.example")
	for _, c := range []struct {
		name, signer, mailFrom string
		want                   bool
	}{
		{"same domain", "example.org", "example.org", true},
		{"subdomain signs for the organization", "mail.example.org", "example.org", true},
		{"organization signs for a subdomain", "example.org", "bounces.example.org", true},
		{"unrelated domain", "forwarder.example", "example.org", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := verify(t, w, sign(t, plain, c.signer, "sel", rsaKey))
			if len(out.Signatures) != 1 || out.Signatures[0].Result != dkim.Pass {
				t.Fatalf("signatures: %s", results(out))
			}
			if got := out.Vouches(c.mailFrom); got.OK != c.want {
				t.Errorf("Vouches(%q) with d=%s: %v, want %v", c.mailFrom, c.signer, got.OK, c.want)
			}
		})
	}
}

func TestAlignedPublicSuffix(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"example.org", "EXAMPLE.ORG.", true},
		{"a.example.co.uk", "b.example.co.uk", true},
		{"example.co.uk", "other.co.uk", false},
		// Two users of one public suffix share no organization.
		{"alice.github.io", "bob.github.io", false},
		{"co.uk", "co.uk", true},
		{"example.org", "", false},
	} {
		if got := dkim.Aligned(c.a, c.b); got != c.want {
			t.Errorf("Aligned(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
	if got := dkim.OrganizationalDomain("mail.example.co.uk"); got != "example.co.uk" {
		t.Errorf("OrganizationalDomain = %q", got)
	}
}

func TestVerifyFields(t *testing.T) {
	msg := sign(t, plain, "example.org", "sel", rsaKey)
	out := verify(t, world("example.org"), msg)
	s := out.Signatures[0]
	_, after, _ := strings.Cut(msg, " b=")
	want := strings.NewReplacer("\r\n", "", " ", "", "\t", "").Replace(after)[:dkim.BPrefix]
	if s.Domain != "example.org" || s.Selector != "sel" || s.B != want || s.Problem != "" {
		t.Errorf("signature %+v, want b=%s", s, want)
	}
}

func TestVerifyBrokenBody(t *testing.T) {
	msg := sign(t, plain, "example.org", "sel", rsaKey)
	msg = strings.Replace(msg, "Hello Bob", "Hello Eve", 1)
	out := verify(t, world("example.org"), msg)
	if got := out.Signatures[0].Result; got != dkim.Fail {
		t.Fatalf("result %s (%s), want fail", got, out.Signatures[0].Problem)
	}
	if out.Vouches("example.org").OK {
		t.Error("a broken body vouches")
	}
}

func TestVerifyKeyProblems(t *testing.T) {
	msg := sign(t, plain, "example.org", "sel", rsaKey)
	revoked := world("example.org")
	revoked.TXT["sel._domainkey.example.org"] = []string{"v=DKIM1; k=rsa; p="}
	other := world("example.org")
	other.TXT["sel._domainkey.example.org"] = []string{rsaRecord(mustRSA())}
	for _, c := range []struct {
		name  string
		world *spftest.Resolver
		want  dkim.Result
	}{
		{"revoked", revoked, dkim.Permerror},
		{"missing", world(), dkim.Permerror},
		{"no data", &spftest.Resolver{TXT: map[string][]string{"sel._domainkey.example.org": nil}}, dkim.Permerror},
		{"another key", other, dkim.Fail},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := verify(t, c.world, msg)
			if got := out.Signatures[0].Result; got != c.want {
				t.Errorf("result %s (%s), want %s", got, out.Signatures[0].Problem, c.want)
			}
			if v := out.Vouches("example.org"); v.OK || v.Temporary {
				t.Errorf("Vouches = %+v", v)
			}
		})
	}
}

func TestVerifySeveralSignaturesOneGood(t *testing.T) {
	// Signed by example.org (Ed25519), then by a forwarder whose key is
	// not published, then by a domain whose published key is another one.
	msg := sign(t, plain, "example.org", "ed", ed)
	msg = sign(t, msg, "forwarder.example", "gone", rsaKey)
	msg = sign(t, msg, "other.example", "sel", rsaKey)
	w := world("example.org", "other.example")
	w.TXT["sel._domainkey.other.example"] = []string{rsaRecord(mustRSA())}
	out := verify(t, w, msg)
	if got, want := results(out), "fail d=other.example s=sel, permerror d=forwarder.example s=gone, pass d=example.org s=ed"; got != want {
		t.Fatalf("results %s, want %s", got, want)
	}
	v := out.Vouches("example.org")
	if !v.OK || v.Signature.Domain != "example.org" {
		t.Errorf("Vouches = %+v", v)
	}
	if out.Vouches("forwarder.example").OK {
		t.Error("a signature without a key vouches")
	}
}

func TestVerifyMaxSignatures(t *testing.T) {
	msg := sign(t, plain, "example.org", "sel", rsaKey)
	for range 3 {
		msg = sign(t, msg, "forwarder.example", "sel", rsaKey)
	}
	w := world("example.org", "forwarder.example")
	v := &dkim.Verifier{Resolver: w, MaxSignatures: 3}
	out := v.Verify(context.Background(), []byte(msg))
	if got, want := results(out), "pass d=forwarder.example s=sel, pass d=forwarder.example s=sel, pass d=forwarder.example s=sel, neutral d=example.org s=sel"; got != want {
		t.Fatalf("results %s, want %s", got, want)
	}
	if out.Vouches("example.org").OK {
		t.Error("a signature beyond the bound vouches")
	}
	for _, q := range w.Queries() {
		if strings.Contains(q, "example.org") {
			t.Errorf("the signature beyond the bound was looked up: %v", q)
		}
	}
}

// go-msgauth v0.7.0 refuses every l= signature; spfmilter relies on it: a
// body length lets anyone append text the signature does not cover.
func TestVerifyBodyLength(t *testing.T) {
	msg := signWithLength(t, plain)
	w := world("example.org")
	for _, c := range []struct {
		name, msg string
	}{
		{"exact length", msg},
		{"text appended", msg + "Click here: http://phish.example/\r\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := verify(t, w, c.msg)
			if got := out.Signatures[0].Result; got != dkim.Policy {
				t.Errorf("result %s (%s), want policy", got, out.Signatures[0].Problem)
			}
			if out.Vouches("example.org").OK {
				t.Error("an l= signature vouches")
			}
		})
	}
}

// signWithLength returns msg signed by example.org with l= the body's
// length. go-msgauth cannot sign with l=, so the tag is inserted after
// signing, which breaks the header hash: a Fail would show that; Policy
// shows that the signature was refused for its l= before any hash.
func signWithLength(t testing.TB, msg string) string {
	t.Helper()
	signed := sign(t, msg, "example.org", "sel", rsaKey)
	_, body, _ := strings.Cut(msg, "\r\n\r\n")
	return strings.Replace(signed, "; bh=", "; l="+strconv.Itoa(len(body))+"; bh=", 1)
}

func TestVerifyOversized(t *testing.T) {
	big := strings.Replace(plain, "Hello Bob,\r\n", "Hello Bob,\r\n"+strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n", 2000), 1)
	msg := sign(t, big, "example.org", "sel", rsaKey)
	w := world("example.org")
	v := &dkim.Verifier{Resolver: w, MaxBytes: int64(len(msg) - 1)}
	out := v.Verify(context.Background(), []byte(msg))
	if !out.Oversized || out.Signatures[0].Result != dkim.Neutral || out.Vouches("example.org").OK {
		t.Fatalf("oversized: %+v", out)
	}
	if q := w.Queries(); len(q) != 0 {
		t.Errorf("an oversized message was looked up: %v", q)
	}
	v.MaxBytes = int64(len(msg))
	if out := v.Verify(context.Background(), []byte(msg)); !out.Vouches("example.org").OK {
		t.Errorf("at the bound: %s", results(out))
	}
}

func TestVerifyNoSignature(t *testing.T) {
	out := verify(t, world(), plain)
	if len(out.Signatures) != 0 || out.Vouches("example.org").OK {
		t.Errorf("unsigned: %+v", out)
	}
}

func TestVerifyTemporaryFailures(t *testing.T) {
	msg := sign(t, plain, "example.org", "sel", rsaKey)
	for _, err := range []error{spftest.ErrTimeout, spftest.ErrServFail} {
		w := world("example.org")
		w.Fail["TXT sel._domainkey.example.org"] = err
		out := verify(t, w, msg)
		if got := out.Signatures[0].Result; got != dkim.Temperror {
			t.Errorf("%v: result %s (%s)", err, got, out.Signatures[0].Problem)
		}
		v := out.Vouches("example.org")
		if v.OK || !v.Temporary {
			t.Errorf("%v: Vouches = %+v", err, v)
		}
		if v := out.Vouches("forwarder.example"); v.Temporary {
			t.Errorf("an unaligned temperror counts: %+v", v)
		}
	}
	w := world("example.org")
	w.Fail["TXT sel._domainkey.example.org"] = spf.ErrNotFound
	if got := verify(t, w, msg).Signatures[0].Result; got != dkim.Permerror {
		t.Errorf("NXDOMAIN: %s", got)
	}
}

// Through the resolver the milter uses, against a real DNS server on
// loopback: keys come back as miekg/dns presents them (long records split
// into strings), and a server that never answers makes a temperror when
// the caller's deadline ends.
func TestVerifyThroughResolver(t *testing.T) {
	key := rsaRecord(rsaKey)
	srv := spftest.NewFuncServer(t, func(q dns.Question) (int, []dns.RR, bool) {
		switch strings.ToLower(q.Name) {
		case "sel._domainkey.example.org.":
			if q.Qtype == dns.TypeTXT {
				return dns.RcodeSuccess, []dns.RR{spftest.TXT(q.Name, key, 300)}, false
			}
			return dns.RcodeSuccess, nil, false
		case "slow._domainkey.example.org.":
			return 0, nil, true
		}
		return dns.RcodeNameError, nil, false
	})
	// A query timeout far above a loopback answer's time on a loaded
	// machine: the unanswered key ends with the caller's deadline below.
	c, err := resolver.New(resolver.Options{Servers: []string{srv.Addr()}, Timeout: 5 * time.Second, Attempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	v := &dkim.Verifier{Resolver: c}
	msg := sign(t, plain, "example.org", "sel", rsaKey)
	if out := v.Verify(context.Background(), []byte(msg)); !out.Vouches("example.org").OK {
		t.Fatalf("through the resolver: %s %+v", results(out), out.Signatures)
	}
	gone := sign(t, plain, "example.org", "gone", rsaKey)
	if got := v.Verify(context.Background(), []byte(gone)).Signatures[0].Result; got != dkim.Permerror {
		t.Errorf("NXDOMAIN key: %s", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	slow := sign(t, plain, "example.org", "slow", rsaKey)
	out := v.Verify(ctx, []byte(slow))
	if got := out.Signatures[0].Result; got != dkim.Temperror {
		t.Errorf("unanswered key: %s (%s)", got, out.Signatures[0].Problem)
	}
	if !out.Vouches("example.org").Temporary {
		t.Error("unanswered key is not temporary")
	}
}
