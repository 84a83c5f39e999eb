package headers

import (
	"github.com/spfmilter/spfmilter/spf"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/emersion/go-msgauth/authres"
)

// checkInvariants verifies what must hold for any input: field values are
// valid UTF-8 without controls except CRLF+TAB folds, never start or end
// with white space, and no line passes 998 octets (RFC 5322 §2.1.1).
func checkInvariants(t *testing.T, fs []Field) {
	t.Helper()
	for _, f := range fs {
		v := f.Value
		if v == "" || strings.ContainsAny(v[:1], " \t\r\n") || strings.ContainsAny(v[len(v)-1:], " \t\r\n") {
			t.Errorf("%s: value starts or ends with white space: %q", f.Name, v)
		}
		if !utf8.ValidString(v) {
			t.Errorf("%s: invalid UTF-8: %q", f.Name, v)
		}
		lines := strings.Split(v, foldSep)
		for i, l := range lines {
			if i == 0 {
				l = f.Name + ": " + l
			}
			if len(l) > maxLine {
				t.Errorf("%s: line %d is %d octets", f.Name, i, len(l))
			}
			if strings.TrimSpace(l) == "" {
				t.Errorf("%s: line %d is blank: %q", f.Name, i, v)
			}
			for _, r := range l {
				if unsafeRune(r) {
					t.Errorf("%s: line %d holds %U: %q", f.Name, i, r, v)
				}
			}
		}
	}
}

// parsesBack checks that an Authentication-Results value reads back with
// authres.Parse to want.
func parsesBack(t *testing.T, v, wantID string, want []authres.Result) {
	t.Helper()
	id, got, err := authres.Parse(v)
	if err != nil {
		t.Fatalf("authres.Parse(%q): %v", v, err)
	}
	if id != wantID {
		t.Errorf("authserv-id %q, want %q", id, wantID)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("authres.Parse(%q) = %#v, want %#v", v, got, want)
	}
}

func TestAuthResultsRoundTrip(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in()
			fs := Fields(in)
			if len(fs) != 2 || fs[0].Name != NameAuthenticationResults || fs[1].Name != NameReceivedSPF {
				t.Fatalf("fields %v, want Authentication-Results above Received-SPF", fs)
			}
			// A permerror's cause reads back as the reason.
			cause := func(o spf.Outcome) string {
				if o.Result == spf.Permerror {
					return string(o.Cause)
				}
				return ""
			}
			want := []authres.Result{&authres.SPFResult{
				Value:  resultValue(in.MailFrom.Result),
				Reason: cause(in.MailFrom),
				From:   mailfromPvalue(in),
			}}
			if in.HELOResult != nil && domainPvalue(in.HELO) != "" {
				want = append(want, &authres.SPFResult{Value: resultValue(in.HELOResult.Result), Reason: cause(*in.HELOResult), Helo: domainPvalue(in.HELO)})
			}
			// authres reads header.d of dkim= and drops header.s and header.b.
			for _, sig := range in.DKIM {
				want = append(want, &authres.DKIMResult{Value: dkimValue(sig.Result), Domain: domainPvalue(sig.Domain)})
			}
			parsesBack(t, fs[0].Value, authservToken(in.AuthservID), want)
			if !ClaimsAuthservID(fs[0].Value, in.AuthservID) {
				t.Errorf("our own field %q does not claim %q", fs[0].Value, in.AuthservID)
			}
		})
	}
}
