package dnsname

import (
	"bytes"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// wireName packs a presentation-form name as miekg/dns does for a question
// and returns the name's wire octets.
func wireName(t *testing.T, pres string) []byte {
	t.Helper()
	buf := make([]byte, 512)
	n, err := dns.PackDomainName(dns.Fqdn(pres), buf, 0, nil, false)
	if err != nil {
		t.Fatalf("PackDomainName(%q): %v", pres, err)
	}
	return buf[:n]
}

// rawWire is the wire form of a raw name: length-prefixed labels.
func rawWire(name string) []byte {
	var b []byte
	for l := range strings.SplitSeq(name, ".") {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	return append(b, 0)
}

// Every octet but "." survives Escape, miekg/dns's packing and unpacking:
// the wire label holds exactly the raw octets, and the unpacked name is
// Escape's spelling, which Unescape turns back into the raw name.
func TestEscapeMatchesMiekg(t *testing.T) {
	for c := range 256 {
		if c == '.' {
			continue
		}
		raw := "a" + string(rune(0)) + "b.example.com"
		raw = strings.Replace(raw, "\x00", string([]byte{byte(c)}), 1)
		pres := Escape(raw)
		wire := wireName(t, pres)
		if !bytes.Equal(wire, rawWire(raw)) {
			t.Errorf("octet %#02x: Escape gives %q, which packs to % x, want % x", c, pres, wire, rawWire(raw))
			continue
		}
		back, _, err := dns.UnpackDomainName(wire, 0)
		if err != nil {
			t.Fatalf("octet %#02x: UnpackDomainName: %v", c, err)
		}
		if back != pres+"." {
			t.Errorf("octet %#02x: miekg/dns unpacks %q, Escape writes %q", c, back, pres)
		}
		if got, ok := Unescape(back); !ok || got != raw {
			t.Errorf("octet %#02x: Unescape(%q) = %q, %v; want %q", c, back, got, ok, raw)
		}
		if Canonical(back) != Canonical(pres) {
			t.Errorf("octet %#02x: Canonical differs between %q and %q", c, back, pres)
		}
	}
}

func TestEscapePlainNameDoesNotAllocate(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { _ = Escape("_spf.mail-1.example.com") }); n != 0 {
		t.Errorf("Escape of a host name allocates %v times", n)
	}
}

// Canonical ignores letter case and how an octet was escaped, and nothing
// else.
func TestCanonical(t *testing.T) {
	same := [][2]string{
		{"Example.COM.", "example.com"},
		{`a\@b.example.com.`, "a@b.example.com"},
		{`\065b.example.com`, "ab.example.com."},
		{`o\'hara.example.com`, `o\039hara.example.com.`},
		{`a\ b.x`, `a\032b.x.`},
		{`\.`, `\046`},
		{".", ""},
	}
	for _, p := range same {
		if a, b := Canonical(p[0]), Canonical(p[1]); a != b || !Equal(p[0], p[1]) {
			t.Errorf("Canonical(%q) = %q, Canonical(%q) = %q; want equal", p[0], a, p[1], b)
		}
	}
	differ := [][2]string{
		{`a\.b.example.com`, "a.b.example.com"},
		{"a.example.com", "b.example.com"},
		{`\200.x`, `\201.x`},
		{"a..b", "a.b"},
		{`a\`, "a"},
		{"\u00e9.x", `\195\169.x`}, // the same octets: equal
	}
	for i, p := range differ {
		a, b := Canonical(p[0]), Canonical(p[1])
		if i == len(differ)-1 {
			if a != b {
				t.Errorf("Canonical(%q) = %q, Canonical(%q) = %q; want equal", p[0], a, p[1], b)
			}
			continue
		}
		if a == b || Equal(p[0], p[1]) {
			t.Errorf("Canonical(%q) = Canonical(%q) = %q; want different", p[0], p[1], a)
		}
	}
}

func TestCanonicalFastPath(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { _ = Canonical("_spf.mail-1.example.com.") }); n != 0 {
		t.Errorf("Canonical of a canonical name allocates %v times", n)
	}
	// The same name with its first octet escaped takes the long way.
	for _, in := range []string{"a.b.", "A.b.", "a.b", "a b.", "x\xe9.y.", "mail.example.com.", `a"b.`} {
		var b strings.Builder
		writeDDD(&b, in[0])
		if got, slow := Canonical(in), Canonical(b.String()+in[1:]); got != slow {
			t.Errorf("Canonical(%q) = %q, the long way %q", in, got, slow)
		}
	}
}

func TestUnescapeRefuses(t *testing.T) {
	for _, in := range []string{`a\.b.example.com`, "a..b", ".a", `a\`, `a\046b.c`} {
		if got, ok := Unescape(in); ok {
			t.Errorf("Unescape(%q) = %q, true; want false", in, got)
		}
	}
	if got, ok := Unescape("."); !ok || got != "" {
		t.Errorf(`Unescape(".") = %q, %v; want "", true`, got, ok)
	}
}

// Every octet of a TXT character-string survives EscapeTXT, packing and
// unpacking, and UnescapeTXT reads back the octets from what miekg/dns
// unpacks.
func TestTXTMatchesMiekg(t *testing.T) {
	var all []byte
	for c := range 256 {
		all = append(all, byte(c))
	}
	for _, raw := range []string{string(all[:128]), string(all[128:]), `v=spf1 exp=%{l}`, `"\"`, "\\123", ""} {
		rr := &dns.TXT{Hdr: dns.RR_Header{Name: "x.", Rrtype: dns.TypeTXT, Class: dns.ClassINET}, Txt: []string{EscapeTXT(raw)}}
		buf := make([]byte, 1024)
		n, err := dns.PackRR(rr, buf, 0, nil, false)
		if err != nil {
			t.Fatalf("PackRR(%q): %v", raw, err)
		}
		// The RDATA is the last len(raw)+1 octets: the length and the string.
		if got := buf[n-len(raw) : n]; !bytes.Equal(got, []byte(raw)) || int(buf[n-len(raw)-1]) != len(raw) {
			t.Errorf("EscapeTXT(%q) = %q packs to % x", raw, EscapeTXT(raw), buf[n-len(raw)-1:n])
		}
		back, _, err := dns.UnpackRR(buf[:n], 0)
		if err != nil {
			t.Fatalf("UnpackRR: %v", err)
		}
		txt := back.(*dns.TXT).Txt
		if len(raw) == 0 {
			if len(txt) != 1 || txt[0] != "" {
				t.Errorf("empty string unpacks as %q", txt)
			}
			continue
		}
		if txt[0] != EscapeTXT(raw) {
			t.Errorf("miekg/dns unpacks %q, EscapeTXT writes %q", txt[0], EscapeTXT(raw))
		}
		if got := UnescapeTXT(txt[0]); got != raw {
			t.Errorf("UnescapeTXT(%q) = %q, want %q", txt[0], got, raw)
		}
	}
	// What a zone file may hold beyond miekg/dns's own spelling.
	for in, want := range map[string]string{`a\b`: "ab", `\999`: string(rune(0)), `end\`: "end", `\12x`: "12x"} {
		if in == `\999` {
			want = string([]byte{byte(999 % 256)})
		}
		if got := UnescapeTXT(in); got != want {
			t.Errorf("UnescapeTXT(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNormalize(t *testing.T) {
	ok := map[string]string{
		"Example.COM.":                   "example.com",
		"_spf.example.com":               "_spf.example.com",
		"bücher.example":                 "xn--bcher-kva.example",
		"localhost":                      "localhost",
		strings.Repeat("a", 63) + ".com": strings.Repeat("a", 63) + ".com",
	}
	for in, want := range ok {
		if got, valid := Normalize(in); !valid || got != want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", in, got, valid, want)
		}
	}
	for _, in := range []string{"", ".", "a..b", "a b.com", "a@b.com", strings.Repeat("a", 64) + ".com",
		strings.Repeat("a.", 127) + "a", "\xff.com", "bü_cher.example", "[192.0.2.1]"} {
		if got, valid := Normalize(in); valid {
			t.Errorf("Normalize(%q) = %q, true; want false", in, got)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = Normalize("mail.example.com") }); n != 0 {
		t.Errorf("Normalize of a normalized name allocates %v times", n)
	}
}

func TestQueryable(t *testing.T) {
	for in, want := range map[string]bool{
		"a b.example.com":                 true,
		"a@b.c":                           true,
		"\xff.x":                          true,
		"":                                false,
		"a..b":                            false,
		".a":                              false,
		"a.":                              false,
		strings.Repeat("a", 63) + ".b":    true,
		strings.Repeat("a", 64) + ".b":    false,
		strings.Repeat("abc.", 63) + "x":  true, // 253
		strings.Repeat("abc.", 63) + "xy": false,
	} {
		if got := Queryable(in); got != want {
			t.Errorf("Queryable(%q) = %v, want %v", in, got, want)
		}
	}
}

// Any queryable raw name goes through Escape and miekg/dns's packing as its
// own octets and comes back from unpacking and Unescape unchanged; TXT
// strings likewise.
func FuzzRoundTrip(f *testing.F) {
	for _, s := range []string{"example.com", "a b.c", `o'h\ara.x`, "\xe9\x00.\x7f", `\065.x`, `"q".x`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if len(raw) <= 255 {
			if got := UnescapeTXT(EscapeTXT(raw)); got != raw {
				t.Fatalf("TXT %q: round trip gives %q", raw, got)
			}
		}
		if !Queryable(raw) {
			return
		}
		pres := Escape(raw)
		buf := make([]byte, 512)
		n, err := dns.PackDomainName(pres+".", buf, 0, nil, false)
		if err != nil {
			t.Fatalf("%q: Escape gives %q, which miekg/dns cannot pack: %v", raw, pres, err)
		}
		if !bytes.Equal(buf[:n], rawWire(raw)) {
			t.Fatalf("%q: packs to % x", raw, buf[:n])
		}
		back, _, err := dns.UnpackDomainName(buf[:n], 0)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := Unescape(back); !ok || got != raw {
			t.Fatalf("%q: unpacked %q, Unescape gives %q, %v", raw, back, got, ok)
		}
		if !Equal(back, pres) || Canonical(back) != Canonical(LowerASCII(pres)) {
			t.Fatalf("%q: %q and %q do not compare equal", raw, back, pres)
		}
	})
}
