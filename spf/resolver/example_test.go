package resolver_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/spfmilter/spfmilter/spf"
	"github.com/spfmilter/spfmilter/spf/resolver"
	"github.com/spfmilter/spfmilter/spf/spftest"
)

func Example() {
	// A DNS server on 127.0.0.1 for the example; in production leave
	// Servers empty to use /etc/resolv.conf.
	srv, err := spftest.StartServer(&spftest.Resolver{TXT: map[string][]string{
		"example.com": {"v=spf1 ip4:192.0.2.0/24 -all"},
	}})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	c, err := resolver.New(resolver.Options{
		Servers: []string{srv.Addr()},
		Timeout: time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	txt, err := c.LookupTXT(ctx, "example.com")
	fmt.Println(txt, err)
	txt, err = c.LookupTXT(ctx, "example.com") // from the cache
	fmt.Println(txt, err, srv.QueryCount())
	_, err = c.LookupTXT(ctx, "nowhere.example.com")
	fmt.Println(errors.Is(err, spf.ErrNotFound))
	// Output:
	// [v=spf1 ip4:192.0.2.0/24 -all] <nil>
	// [v=spf1 ip4:192.0.2.0/24 -all] <nil> 1
	// true
}
