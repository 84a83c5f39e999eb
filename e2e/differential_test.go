package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/spfmilter/spfmilter/spf/spftest"
)

// The differential test runs random SPF worlds (diffworld_test.go) through
// `spfmilter check`, pyspf and Mail::SPF, each world served by one DNS server
// on loopback, and compares the three results. Where spfmilter differs from
// both references the difference must be one of the classes listed, with
// the RFC 7208 text that decides it, in known-differences.yaml; any other is
// a failure that prints the world to reproduce it.
//
// SPFMILTER_DIFF_WORLDS (default 300) and SPFMILTER_DIFF_SEED (default 1)
// choose the run; SPFMILTER_DIFF_WORLD=N runs only world N of that seed.
// bench/differential.sh runs a longer one.

const (
	diffDir          = "../testdata/differential"
	diffReceiver     = "mx.receiver.example"
	diffDefaultCount = 300
	diffCaseTimeout  = 30 * time.Second
)

// diffOutcome is one implementation's verdict on one identity.
type diffOutcome struct {
	Result      string   `json:"result"`
	Explanation *string  `json:"explanation"`
	Mechanism   string   `json:"mechanism"`
	Error       string   `json:"error,omitempty"`
	Problem     string   `json:"problem"` // why permerror or temperror
	Voids       int      `json:"-"`       // spfmilter's void lookups
	Terms       int      `json:"-"`       // spfmilter's DNS-querying terms
	Trace       []string `json:"-"`       // spfmilter's trace
}

// knownDifference is one entry of known-differences.yaml. A comparison
// matches it when every field given matches.
type knownDifference struct {
	ID          string `yaml:"id"`
	Description string `yaml:"description"`
	RFC         string `yaml:"rfc"`
	// Explains lists the references whose disagreement with spfmilter the
	// entry accounts for: "pyspf", "mailspf" or both (the default).
	Explains []string `yaml:"explains"`
	// Kind is what differs: "result" (the default) or "explanation".
	Kind string `yaml:"kind"`
	// Transforms (explanation entries only) name the diffTransforms after
	// which the texts are equal.
	Transforms []string `yaml:"transforms"`
	Match      struct {
		Scope string `yaml:"scope"` // "mfrom" or "helo"
		// spfmilter's result, and regular expressions on its problem
		// text and on the term that matched.
		Spfmilter []string `yaml:"spfmilter"`
		Problem   string   `yaml:"problem"`
		Mechanism string   `yaml:"mechanism"`
		// DNSLookups, when set, is the number of DNS-querying terms
		// spfmilter counted.
		DNSLookups *int `yaml:"dns_lookups"`
		// The same for the reference being explained; its problem is
		// its reason for a permerror or temperror, or why it crashed.
		Reference struct {
			Result    []string `yaml:"result"`
			Problem   string   `yaml:"problem"`
			Mechanism string   `yaml:"mechanism"`
		} `yaml:"reference"`
		// Regular expressions on the world's dump, the identity checked
		// (the sender, postmaster@HELO for a null sender, or the HELO
		// name) and the client.
		Zone     string `yaml:"zone"`
		Identity string `yaml:"identity"`
		Sender   string `yaml:"sender"`
		HELO     string `yaml:"helo"`
		IP       string `yaml:"ip"`
	} `yaml:"match"`
	re struct{ problem, mech, refProblem, refMech, zone, identity, sender, helo, ip *regexp.Regexp }
	n  int
}

func loadKnownDifferences(t *testing.T) []*knownDifference {
	t.Helper()
	b, err := os.ReadFile(diffDir + "/known-differences.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var kds []*knownDifference
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&kds); err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("known-differences.yaml: %v", err)
	}
	seen := map[string]bool{}
	for _, k := range kds {
		if k.ID == "" || k.Description == "" || k.RFC == "" || seen[k.ID] {
			t.Fatalf("known-differences.yaml: entry %q needs a unique id, a description and the RFC text", k.ID)
		}
		seen[k.ID] = true
		if k.Kind == "" {
			k.Kind = "result"
		}
		if (k.Kind == "explanation") != (len(k.Transforms) > 0) || (k.Kind != "result" && k.Kind != "explanation") {
			t.Fatalf("known-differences.yaml: %s: kind %q (result, or explanation with transforms)", k.ID, k.Kind)
		}
		for _, tr := range k.Transforms {
			if diffTransforms[tr] == nil {
				t.Fatalf("known-differences.yaml: %s: unknown transform %q", k.ID, tr)
			}
		}
		if len(k.Explains) == 0 {
			k.Explains = []string{"pyspf", "mailspf"}
		}
		for _, e := range k.Explains {
			if e != "pyspf" && e != "mailspf" {
				t.Fatalf("known-differences.yaml: %s: explains %q (want pyspf or mailspf)", k.ID, e)
			}
		}
		for _, f := range []struct {
			src string
			dst **regexp.Regexp
		}{{k.Match.Problem, &k.re.problem}, {k.Match.Mechanism, &k.re.mech},
			{k.Match.Reference.Problem, &k.re.refProblem}, {k.Match.Reference.Mechanism, &k.re.refMech},
			{k.Match.Zone, &k.re.zone}, {k.Match.Identity, &k.re.identity}, {k.Match.Sender, &k.re.sender},
			{k.Match.HELO, &k.re.helo}, {k.Match.IP, &k.re.ip}} {
			if f.src != "" {
				re, err := regexp.Compile(f.src)
				if err != nil {
					t.Fatalf("known-differences.yaml: %s: %v", k.ID, err)
				}
				*f.dst = re
			}
		}
	}
	return kds
}

// diffComparison is one identity of one case, as the three saw it.
type diffComparison struct {
	World *diffWorld
	Case  diffCase
	Scope string
	S     diffOutcome // spfmilter
	P     diffOutcome // pyspf
	M     diffOutcome // Mail::SPF
}

// matches reports whether k explains why spfmilter's verdict in c differs
// from ref's, the reference's.
func (k *knownDifference) matches(c *diffComparison, ref diffOutcome) bool {
	m := &k.Match
	in := func(list []string, r string) bool { return len(list) == 0 || slices.Contains(list, r) }
	re := func(r *regexp.Regexp, s string) bool { return r == nil || r.MatchString(s) }
	refProblem := ref.Problem
	if ref.Result == "crash" {
		refProblem = ref.Error
	}
	return (m.Scope == "" || m.Scope == c.Scope) &&
		in(m.Spfmilter, c.S.Result) && re(k.re.problem, c.S.Problem) && re(k.re.mech, c.S.Mechanism) &&
		(m.DNSLookups == nil || *m.DNSLookups == c.S.Terms) &&
		in(m.Reference.Result, ref.Result) && re(k.re.refProblem, refProblem) && re(k.re.refMech, ref.Mechanism) &&
		re(k.re.identity, c.identity()) && re(k.re.sender, c.Case.Sender) && re(k.re.helo, c.Case.HELO) && re(k.re.ip, c.Case.IP) &&
		(k.re.zone == nil || k.re.zone.MatchString(c.World.Dump()))
}

// explainDifference reports whether the known differences account for
// spfmilter's disagreement with each reference it disagrees with, in the
// result or (what "explanation") in the exp= text, and counts the entries
// used. An explanation entry explains a difference when, after its
// transforms (and those of every other entry that matches), the texts are
// equal.
func explainDifference(kds []*knownDifference, c *diffComparison, what string) bool {
	var used []*knownDifference
	for _, ref := range []struct {
		name string
		out  diffOutcome
	}{{"pyspf", c.P}, {"mailspf", c.M}} {
		applies := func(k *knownDifference) bool {
			return k.Kind == what && slices.Contains(k.Explains, ref.name) && k.matches(c, ref.out)
		}
		if what == "result" {
			if ref.out.Result == c.S.Result {
				continue
			}
			i := slices.IndexFunc(kds, applies)
			if i < 0 {
				return false
			}
			used = append(used, kds[i])
			continue
		}
		se, re := *c.S.Explanation, *ref.out.Explanation
		if se == re {
			continue
		}
		var these []*knownDifference
		for _, k := range kds {
			if applies(k) {
				se, re = k.transform(se), k.transform(re)
				these = append(these, k)
			}
		}
		if se != re {
			return false
		}
		used = append(used, these...)
	}
	for _, k := range slices.Compact(used) {
		k.n++
	}
	return true
}

var (
	postmasterAt = regexp.MustCompile(`(?i)postmaster(@|%40)`)
	rootDot      = regexp.MustCompile(`([a-zA-Z0-9])\.(\s|$)`)
)

// The transforms an explanation entry may apply to both texts.
var diffTransforms = map[string]func(string) string{
	// Letter case does not matter.
	"fold-case": strings.ToLower,
	// %{s} of a HELO check or a null sender is the bare domain.
	"drop-postmaster": func(s string) string { return postmasterAt.ReplaceAllLiteralString(s, "") },
	// A name's trailing (root) dot is left out.
	"drop-root-dot": func(s string) string { return rootDot.ReplaceAllString(s, "${1}${2}") },
}

func (k *knownDifference) transform(s string) string {
	for _, name := range k.Transforms {
		s = diffTransforms[name](s)
	}
	return s
}

// identity is the identity the comparison checked, as the client gave it.
func (c *diffComparison) identity() string {
	switch {
	case c.Scope == "helo":
		return c.Case.HELO
	case c.Case.Sender == "":
		return "postmaster@" + c.Case.HELO
	}
	return c.Case.Sender
}

func (c *diffComparison) String() string {
	exp := func(o diffOutcome) string {
		s := o.Result
		if o.Explanation != nil {
			s += fmt.Sprintf(" exp=%q", *o.Explanation)
		}
		if o.Problem != "" {
			s += fmt.Sprintf(" problem=%q", o.Problem)
		}
		if o.Mechanism != "" {
			s += fmt.Sprintf(" mechanism=%q", o.Mechanism)
		}
		if o.Voids > 0 {
			s += fmt.Sprintf(" voids=%d", o.Voids)
		}
		if o.Error != "" {
			s += fmt.Sprintf(" error=%q", o.Error)
		}
		return s
	}
	return fmt.Sprintf("world %d, %s: ip=%s sender=%q helo=%q\n  spfmilter: %s\n  pyspf:     %s\n  Mail::SPF: %s\nspfmilter trace:\n  %s\nzone:\n%s",
		c.World.Index, c.Scope, c.Case.IP, c.Case.Sender, c.Case.HELO, exp(c.S), exp(c.P), exp(c.M),
		strings.Join(c.S.Trace, "\n  "), c.World.Dump())
}

// driver is a reference implementation's driver script, answering one JSON
// line per case.
type driver struct {
	name string
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Reader
	errb *lockedBuffer
	seq  int
}

func startDriver(t *testing.T, name string, argv ...string) *driver {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	d := &driver{name: name, cmd: cmd, errb: &lockedBuffer{}}
	cmd.Stderr = d.errb
	var err error
	if d.in, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d.out = bufio.NewReaderSize(stdout, 1<<16)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		d.in.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }() //nolint:errcheck // exit status is irrelevant here
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill() //nolint:errcheck
			<-done
		}
	})
	return d
}

// ask sends one case and reads the answer, killing the driver if it does
// not answer within diffCaseTimeout.
func (d *driver) ask(req map[string]string) (diffOutcome, error) {
	d.seq++
	id := strconv.Itoa(d.seq)
	req["id"] = id
	b, _ := json.Marshal(req)
	if _, err := d.in.Write(append(b, '\n')); err != nil {
		return diffOutcome{}, fmt.Errorf("%s: write: %w\n%s", d.name, err, d.errb.String())
	}
	type answer struct {
		line []byte
		err  error
	}
	ch := make(chan answer, 1)
	go func() {
		l, err := d.out.ReadBytes('\n')
		ch <- answer{l, err}
	}()
	var a answer
	select {
	case a = <-ch:
	case <-time.After(diffCaseTimeout):
		d.cmd.Process.Kill() //nolint:errcheck
		return diffOutcome{}, fmt.Errorf("%s: no answer in %v for %s", d.name, diffCaseTimeout, b)
	}
	if a.err != nil {
		return diffOutcome{}, fmt.Errorf("%s: read: %w\n%s", d.name, a.err, d.errb.String())
	}
	var out struct {
		diffOutcome
		ID string `json:"id"`
	}
	if err := json.Unmarshal(a.line, &out); err != nil || out.ID != id {
		return diffOutcome{}, fmt.Errorf("%s: bad answer %q to %s (%v)", d.name, a.line, b, err)
	}
	return out.diffOutcome, nil
}

// spfmilterCheck runs `spfmilter check --json` for c against the server at
// addr. It returns the MAIL FROM outcome and the HELO outcome (nil when
// check reports the HELO as not checked). A refused argument is reported
// as the result "refused".
func spfmilterCheck(bin, addr string, c diffCase) (mfrom diffOutcome, helo *diffOutcome, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), diffCaseTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "check", "--json", "--trace", "--ip", c.IP, "--sender", c.Sender, "--helo", c.HELO,
		"--resolver", addr, "--receiver", diffReceiver, "--authserv-id", diffReceiver)
	// A binary built with -race sleeps a second on exit by default; its
	// race reports still fail the run (exit status 66).
	cmd.Env = append(os.Environ(), "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) && ee.ExitCode() == 2 {
		r := diffOutcome{Result: "refused", Error: strings.TrimSpace(stderr.String())}
		return r, &r, nil
	}
	if err != nil {
		return mfrom, nil, fmt.Errorf("spfmilter check: %w\n%s", err, stderr.String())
	}
	type one struct {
		Domain      string   `json:"domain"`
		Result      string   `json:"result"`
		Mechanism   string   `json:"mechanism"`
		Explanation string   `json:"explanation"`
		Problem     string   `json:"problem"`
		DNSLookups  int      `json:"dns_lookups"`
		VoidLookups int      `json:"void_lookups"`
		Trace       []string `json:"trace"`
	}
	var j struct {
		HELO     *one `json:"helo"`
		MailFrom *one `json:"mailfrom"`
	}
	if err := json.Unmarshal(out, &j); err != nil || j.MailFrom == nil {
		return mfrom, nil, fmt.Errorf("spfmilter check: bad output %q (%v)", out, err)
	}
	conv := func(o *one) diffOutcome {
		d := diffOutcome{Result: o.Result, Problem: o.Problem, Mechanism: o.Mechanism, Voids: o.VoidLookups, Terms: o.DNSLookups, Trace: o.Trace}
		// The default explanation names the domain and the address; an
		// exp= text is anything else.
		if o.Result == "fail" && !strings.HasSuffix(o.Explanation, " as permitted sender") {
			e := o.Explanation
			d.Explanation = &e
		}
		return d
	}
	mfrom = conv(j.MailFrom)
	if j.HELO != nil {
		h := conv(j.HELO)
		helo = &h
	}
	return mfrom, helo, nil
}

// diffRun evaluates worlds and collects the comparisons.
type diffRun struct {
	bin        string
	mu         sync.Mutex
	comparison []*diffComparison
	worlds     int
	cases      int
}

func (r *diffRun) world(w *diffWorld, py, pl *driver) error {
	srv, err := spftest.StartServer(w.Zone)
	if err != nil {
		return err
	}
	defer srv.Close()
	r.mu.Lock()
	r.worlds++
	r.mu.Unlock()
	for _, c := range w.Cases {
		sm, sh, err := spfmilterCheck(r.bin, srv.Addr(), c)
		if err != nil {
			return fmt.Errorf("world %d: %w", w.Index, err)
		}
		scopes := []string{"mfrom"}
		if c.HELODomain {
			scopes = append(scopes, "helo")
		}
		var cmps []*diffComparison
		for _, scope := range scopes {
			cmp := &diffComparison{World: w, Case: c, Scope: scope, S: sm}
			if scope == "helo" {
				if sh == nil {
					cmp.S = diffOutcome{Result: "not_checked"}
				} else {
					cmp.S = *sh
				}
			}
			req := map[string]string{"server": srv.Addr(), "scope": scope, "ip": c.IP,
				"sender": c.Sender, "helo": c.HELO, "receiver": diffReceiver}
			if cmp.P, err = py.ask(req); err != nil {
				return err
			}
			if cmp.M, err = pl.ask(req); err != nil {
				return err
			}
			cmps = append(cmps, cmp)
		}
		r.mu.Lock()
		r.cases++
		r.comparison = append(r.comparison, cmps...)
		r.mu.Unlock()
	}
	return nil
}

func diffEnvInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: want a number", name, v)
	}
	return n
}

func TestDifferential(t *testing.T) {
	if testing.Short() {
		t.Skip("runs hundreds of SPF checks through three implementations; skipped with -short")
	}
	// Debian's python3-spf is a module of the system Python, whatever
	// python3 comes first in PATH.
	python := "/usr/bin/python3"
	needFile(t, python, "the system Python")
	perl := needProgram(t, "perl")
	if out, err := runCmd(30*time.Second, python, "-c", "import spf, dns.resolver"); err != nil {
		unavailable(t, "pyspf is not installed (apt-get install python3-spf python3-dnspython): %v\n%s", err, out)
	}
	if out, err := runCmd(30*time.Second, perl, "-MMail::SPF", "-MJSON::PP", "-e", "1"); err != nil {
		unavailable(t, "Mail::SPF is not installed (apt-get install libmail-spf-perl): %v\n%s", err, out)
	}
	kds := loadKnownDifferences(t)
	count := diffEnvInt(t, "SPFMILTER_DIFF_WORLDS", diffDefaultCount)
	seed := uint64(diffEnvInt(t, "SPFMILTER_DIFF_SEED", 1))
	only := diffEnvInt(t, "SPFMILTER_DIFF_WORLD", -1)
	run := &diffRun{bin: milterBinary(t)}

	indexes := make(chan int)
	go func() {
		defer close(indexes)
		if only >= 0 {
			indexes <- only
			return
		}
		for i := range count {
			indexes <- i
		}
	}()
	workers := min(max(runtime.GOMAXPROCS(0), 2), 4)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		py := startDriver(t, "pyspf", python, diffDir+"/pyspf-driver.py")
		pl := startDriver(t, "Mail::SPF", perl, diffDir+"/mailspf-driver.pl")
		wg.Go(func() {
			for i := range indexes {
				if err := run.world(newDiffWorld(seed, i), py, pl); err != nil {
					errs <- err
					for range indexes {
					}
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	slices.SortFunc(run.comparison, func(a, b *diffComparison) int { return a.World.Index - b.World.Index })

	// SPFMILTER_DIFF_OUT names a file that gets every unexplained
	// difference with its world; the test log shows the first of each kind.
	var out *os.File
	if name := os.Getenv("SPFMILTER_DIFF_OUT"); name != "" {
		f, err := os.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		out = f
	}
	var sp, sm, pm, all, unknown int
	var exp struct{ n, sp, sm, pm int }
	kinds := map[string]int{}
	unexplained := func(c *diffComparison, kind string) {
		unknown++
		kinds[kind]++
		if kinds[kind] == 1 {
			t.Errorf("spfmilter differs from both references:\n%s", c)
		}
		if out != nil {
			fmt.Fprintf(out, "%s\n\n", c)
		}
	}
	// What the worlds exercised, as spfmilter saw it.
	results := map[string]int{}
	var termLimit, voidLimit, withExp int
	for _, c := range run.comparison {
		results[c.S.Result]++
		switch {
		case strings.Contains(c.S.Problem, "DNS-causing terms"):
			termLimit++
		case strings.Contains(c.S.Problem, "void lookups"):
			voidLimit++
		}
		if c.S.Explanation != nil {
			withExp++
		}
	}
	for _, c := range run.comparison {
		s, p, m := c.S.Result, c.P.Result, c.M.Result
		if s == p {
			sp++
		}
		if s == m {
			sm++
		}
		if p == m {
			pm++
		}
		if s == p && p == m {
			all++
		}
		if s != p && s != m && !explainDifference(kds, c, "result") {
			unexplained(c, fmt.Sprintf("%s: spfmilter %s, pyspf %s, Mail::SPF %s", c.Scope, s, p, m))
		}
		// Explanations are compared where all three fail with an exp= text.
		if s != "fail" || p != s || m != s || c.S.Explanation == nil || c.P.Explanation == nil || c.M.Explanation == nil {
			continue
		}
		se, pe, me := *c.S.Explanation, *c.P.Explanation, *c.M.Explanation
		exp.n++
		if se == pe {
			exp.sp++
		}
		if se == me {
			exp.sm++
		}
		if pe == me {
			exp.pm++
		}
		if se != pe && se != me && !explainDifference(kds, c, "explanation") {
			unexplained(c, fmt.Sprintf("%s: explanation", c.Scope))
		}
	}
	n := len(run.comparison)
	rate := func(k int) string { return fmt.Sprintf("%d/%d (%.2f%%)", k, n, 100*float64(k)/float64(max(n, 1))) }
	t.Logf("differential: seed %d, %d worlds, %d cases, %d identities compared", seed, run.worlds, run.cases, n)
	t.Logf("differential: spfmilter vs pyspf:     %s", rate(sp))
	t.Logf("differential: spfmilter vs Mail::SPF: %s", rate(sm))
	t.Logf("differential: pyspf vs Mail::SPF:     %s", rate(pm))
	t.Logf("differential: all three agree:        %s", rate(all))
	var rs []string
	for _, r := range slices.Sorted(mapsKeys(results)) {
		rs = append(rs, fmt.Sprintf("%s %d", r, results[r]))
	}
	t.Logf("differential: spfmilter results: %s; permerror at the 10-term limit %d, at the void limit %d; fail with exp= text %d",
		strings.Join(rs, ", "), termLimit, voidLimit, withExp)
	erate := func(k int) string {
		return fmt.Sprintf("%d/%d (%.2f%%)", k, exp.n, 100*float64(k)/float64(max(exp.n, 1)))
	}
	t.Logf("differential: exp= explanations where all three fail: spfmilter vs pyspf %s, spfmilter vs Mail::SPF %s, pyspf vs Mail::SPF %s",
		erate(exp.sp), erate(exp.sm), erate(exp.pm))
	for _, k := range kds {
		t.Logf("differential: known difference %-32s %d", k.ID, k.n)
	}
	for _, k := range slices.Sorted(mapsKeys(kinds)) {
		t.Logf("differential: unexplained %-60s %d", k, kinds[k])
	}
	if unknown > 0 {
		t.Errorf("%d identities where spfmilter differs from both references and no known difference applies", unknown)
	}
}

// TestDifferentialServe serves one world of a differential run on loopback
// for a while, to reproduce a difference by hand: it runs only when
// SPFMILTER_DIFF_SERVE names the world, prints the server's address, the
// world and its cases, and stops after SPFMILTER_DIFF_SERVE_MINUTES
// (default 10).
func TestDifferentialServe(t *testing.T) {
	if os.Getenv("SPFMILTER_DIFF_SERVE") == "" {
		t.Skip("set SPFMILTER_DIFF_SERVE=N (and SPFMILTER_DIFF_SEED) to serve world N")
	}
	w := newDiffWorld(uint64(diffEnvInt(t, "SPFMILTER_DIFF_SEED", 1)), diffEnvInt(t, "SPFMILTER_DIFF_SERVE", 0))
	srv := spftest.NewServer(t, w.Zone)
	fmt.Printf("world %d served on %s\n%s", w.Index, srv.Addr(), w.Dump())
	for _, c := range w.Cases {
		fmt.Printf("case: --ip %s --sender %q --helo %q\n", c.IP, c.Sender, c.HELO)
	}
	time.Sleep(time.Duration(diffEnvInt(t, "SPFMILTER_DIFF_SERVE_MINUTES", 10)) * time.Minute)
}

// TestDifferentialWorlds checks what the differential test relies on
// without the reference implementations: the known differences load, and a
// world depends only on its seed and number.
func TestDifferentialWorlds(t *testing.T) {
	if len(loadKnownDifferences(t)) == 0 {
		t.Error("known-differences.yaml lists nothing")
	}
	a, b := newDiffWorld(5, 17), newDiffWorld(5, 17)
	if a.Dump() != b.Dump() || fmt.Sprint(a.Cases) != fmt.Sprint(b.Cases) {
		t.Error("the same seed and number gave two different worlds")
	}
	if c := newDiffWorld(5, 18); c.Dump() == a.Dump() {
		t.Error("worlds 17 and 18 are the same")
	}
	if len(a.Cases) == 0 || len(a.Zone.TXT) == 0 {
		t.Errorf("world 17 has %d cases and %d TXT names", len(a.Cases), len(a.Zone.TXT))
	}
}
