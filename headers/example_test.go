package headers_test

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/spfmilter/spfmilter/headers"
	"github.com/spfmilter/spfmilter/spf"
)

func ExampleFields() {
	fs := headers.Fields(headers.Input{
		AuthservID:   "mx.example.org",
		Receiver:     "mx.example.org",
		ClientIP:     netip.MustParseAddr("192.0.2.1"),
		HELO:         "mail.example.com",
		EnvelopeFrom: "alice@example.com",
		MailFrom: spf.Outcome{
			Result:    spf.Fail,
			Identity:  spf.IdentityMailFrom,
			Sender:    "alice@example.com",
			Mechanism: "-all",
		},
	})
	for _, f := range fs {
		// Folds are CRLF + TAB; shown here with LF.
		fmt.Printf("%s: %s\n", f.Name, strings.ReplaceAll(f.Value, "\r\n", "\n"))
	}
	// Output:
	// Authentication-Results: mx.example.org;
	//	spf=fail smtp.mailfrom=alice@example.com
	// Received-SPF: fail (mx.example.org: domain of alice@example.com does not
	//	designate 192.0.2.1 as permitted sender) client-ip=192.0.2.1;
	//	envelope-from="alice@example.com"; helo=mail.example.com;
	//	receiver=mx.example.org; identity=mailfrom; mechanism=-all
}

func ExampleClaimsAuthservID() {
	fmt.Println(headers.ClaimsAuthservID("(forged) MX.example.org 1; spf=pass smtp.mailfrom=x@example.com", "mx.example.org"))
	fmt.Println(headers.ClaimsAuthservID("relay.example.net; spf=pass", "mx.example.org"))
	// Output:
	// true
	// false
}
