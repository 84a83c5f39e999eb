package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A message whose MAIL FROM fails under --actions mailfrom.fail=quarantine
// is accepted, marked, and held in Postfix's hold queue (SMFIR_QUARANTINE);
// a passing one on the same connection is delivered.
func TestPostfixQuarantine(t *testing.T) {
	needRoot(t)
	needProgram(t, "postfix")
	needProgram(t, "smtp-sink")
	postcat := needProgram(t, "postcat")
	dir := openRunDir(t)
	dns := startDNS(t)
	ns := newNamespace(t, dir, strings.Split(dns.Addr(), ":")[0])
	m := startMilter(t, "quarantine", dns.Addr(), "--actions", "mailfrom.fail=quarantine", "--log-level", "debug")
	s := startSink(t, dir)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	startPostfix(t, dir, ns, s.Port, []postfixListener{{Addr: addr, Milter: m.Addr}})

	c := dialSMTP(t, addr, clientHELO)
	held := uniqueID("postfix", "quarantine", 0)
	passed := uniqueID("postfix", "quarantine", 1)
	if err := c.send(t, message{ID: held, From: "bob@" + failDomain}); err != nil {
		t.Fatalf("quarantined message refused: %d %s", err.Code, err.Msg)
	}
	if err := c.send(t, message{ID: passed, From: "alice@" + passDomain}); err != nil {
		t.Fatalf("passing message refused: %d %s", err.Code, err.Msg)
	}
	c.quit()
	s.wait(t, passed, 60*time.Second)

	// The hold queue is a directory of queue files; postcat reads one.
	hold := filepath.Join(dir, "spool", "hold")
	var file, content string
	for deadline := time.Now().Add(60 * time.Second); file == "" && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		entries, _ := os.ReadDir(hold)
		for _, e := range entries {
			out, err := runCmd(30*time.Second, postcat, "-c", filepath.Join(dir, "postfix"), "-h", filepath.Join(hold, e.Name()))
			if err == nil && strings.Contains(out, held) {
				file, content = e.Name(), out
			}
		}
	}
	if file == "" {
		entries, _ := os.ReadDir(hold)
		t.Fatalf("message %s not in the hold queue %s (%d files)", held, hold, len(entries))
	}
	if !strings.Contains(content, "spf=fail smtp.mailfrom=bob@"+failDomain) || !strings.Contains(content, "Received-SPF: fail") {
		t.Errorf("held message lacks our fields:\n%s", content)
	}
	if n := s.count(t, held); n != 0 {
		t.Errorf("held message delivered %d times", n)
	}
	if out := m.out.String(); !strings.Contains(out, "action=quarantine") || !strings.Contains(out, `quarantine="SPF fail for mailfrom `+failDomain+`"`) {
		t.Errorf("milter log lacks the quarantine:\n%s", out)
	}
}
