package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"
)

// defaultHealthURL is /-/healthy on the default http_listen address, which is
// also where the container image's default command listens.
const defaultHealthURL = "http://127.0.0.1:9466/-/healthy"

// runHealthcheck is the healthcheck command: it asks a running daemon's
// /-/healthy and exits 0 when the answer is 200, else 1. It exists for
// container HEALTHCHECKs, since the runtime image has no shell nor curl. Every
// failure, bad arguments included, exits 1: Docker reserves status 2.
func runHealthcheck(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	url := fset.String("url", defaultHealthURL, "the `URL` to ask")
	timeout := fset.Duration("timeout", 5*time.Second, "give up after this `DURATION`")
	if err := parseFlags(fset, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printFlags(stdout, fset, "Usage: spfmilter healthcheck [--url URL] [--timeout DURATION]\n\nExits 0 when URL answers 200, else 1.\n\nFlags:")
			return 0
		}
		fmt.Fprintf(stderr, "spfmilter healthcheck: %v\n", err)
		return 1
	}
	if fset.NArg() > 0 {
		fmt.Fprintf(stderr, "spfmilter healthcheck: unexpected argument %q (see --help)\n", fset.Arg(0))
		return 1
	}
	if err := probe(*url, *timeout); err != nil {
		fmt.Fprintf(stderr, "spfmilter healthcheck: %v\n", err)
		return 1
	}
	return 0
}

// probe GETs url and wants 200. It never goes through a proxy: the daemon
// is local to the health check.
func probe(url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}
