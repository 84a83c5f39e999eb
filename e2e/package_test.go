package e2e

// The packages, end to end: deploy/package.sh builds them twice to the same
// bytes, dpkg-deb, lintian and rpm read them, apt-get installs the .deb on
// this machine, the daemon runs as the unit's command line under the
// package's user and marks a message that the real Postfix relays through
// its unix socket, and removal then purge leave what Debian expects.
//
// Installing changes the machine, so the test runs only with
// SPFMILTER_E2E_PACKAGE=1 (.ci/run's packages step sets it), refuses to touch an spfmilter package it did
// not install, and purges its own when it ends. The spfmilter user stays, as
// on any Debian system after a purge; a later run reuses it.

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

const (
	pkgConfig  = "/etc/spfmilter/spfmilter.yaml"
	pkgSockDir = "/var/spool/postfix/spfmilter"
	pkgUnit    = "/lib/systemd/system/spfmilter.service"
	pkgWants   = "/etc/systemd/system/multi-user.target.wants/spfmilter.service"
)

// pkgBuild runs deploy/package.sh into dist and returns its SHA256SUMS.
// args are package.sh's (a version).
func pkgBuild(t *testing.T, dist string, args ...string) string {
	t.Helper()
	cmd := exec.Command("bash", append([]string{"../deploy/package.sh"}, args...)...)
	cmd.Env = append(os.Environ(), "DIST="+dist)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	outb, err := cmd.Output()
	out := string(outb)
	if err != nil {
		t.Fatalf("deploy/package.sh: %v\n%s", err, stderr.String())
	}
	sums, err := os.ReadFile(filepath.Join(dist, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out) != strings.TrimSpace(string(sums)) {
		t.Errorf("package.sh printed\n%s\nbut SHA256SUMS is\n%s", out, sums)
	}
	return string(sums)
}

// pkgInstalled reports dpkg's status of the spfmilter package ("" when
// dpkg does not know it).
func pkgInstalled() string {
	out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", "spfmilter").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func aptGet(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command("apt-get", append([]string{"-y", "-q", "-o", "DPkg::Lock::Timeout=120"}, args...)...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("apt-get %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func TestPackage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and installs the packages; skipped in -short mode")
	}
	// .ci/run runs this test in a step of its own, with its own timeout.
	if os.Getenv("SPFMILTER_E2E_PACKAGE") != "1" {
		t.Skip("installs a package on this machine: runs only with SPFMILTER_E2E_PACKAGE=1 (as .ci/run does)")
	}
	needRoot(t)
	for _, p := range []string{"git", "go", "dpkg-deb", "dpkg-query", "apt-get", "lintian", "rpm", "setpriv", "systemd-analyze"} {
		needProgram(t, p)
	}
	needProgram(t, "postfix")
	needProgram(t, "smtp-sink")
	if st := pkgInstalled(); st != "" && st != "unknown ok not-installed" {
		t.Fatalf("an spfmilter package is already on this machine (%q); purge it first (apt-get purge spfmilter)", st)
	}

	// Two builds of one commit are byte-identical.
	dist := t.TempDir()
	sums := pkgBuild(t, dist)
	if again := pkgBuild(t, dist); again != sums {
		t.Errorf("two builds differ:\n%s\n%s", sums, again)
	}
	files := map[string]string{} // name -> path, by what it is
	for _, line := range strings.Split(strings.TrimSpace(sums), "\n") {
		name := line[strings.LastIndex(line, " ")+1:]
		files[name] = filepath.Join(dist, name)
	}
	t.Logf("SHA256SUMS:\n%s", sums)
	version := ""
	for name := range files {
		if v, ok := strings.CutPrefix(name, "spfmilter_"); ok && strings.HasSuffix(v, "_linux_amd64") {
			version = strings.TrimSuffix(v, "_linux_amd64")
		}
	}
	if version == "" {
		t.Fatalf("no amd64 binary among the artifacts: %v", files)
	}
	var want []string
	for _, a := range [][2]string{{"amd64", "x86_64"}, {"arm64", "aarch64"}} {
		want = append(want, "spfmilter_"+version+"_linux_"+a[0], "spfmilter_"+version+"_"+a[0]+".deb", "spfmilter-"+version+"."+a[1]+".rpm")
	}
	for _, w := range want {
		if files[w] == "" {
			t.Errorf("package.sh made no %s", w)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	for _, a := range []string{"amd64", "arm64"} {
		out, err := runCmd(time.Minute, "file", "-b", files["spfmilter_"+version+"_linux_"+a])
		if err == nil && !strings.Contains(out, "statically linked") {
			t.Errorf("the %s binary is not static: %s", a, out)
		}
	}

	deb := files["spfmilter_"+version+"_"+runtime.GOARCH+".deb"]
	if deb == "" {
		t.Fatalf("no .deb for this machine's %s", runtime.GOARCH)
	}
	pkgCheckDeb(t, deb, version)
	for _, a := range []string{"x86_64", "aarch64"} {
		pkgCheckRPM(t, files["spfmilter-"+version+"."+a+".rpm"], a)
	}

	// Install. From here on the machine is changed: the cleanup purges.
	abs, err := filepath.Abs(deb)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if pkgInstalled() != "" && pkgInstalled() != "unknown ok not-installed" {
			if out, err := runCmd(2*time.Minute, "dpkg", "--purge", "spfmilter"); err != nil {
				t.Errorf("purging spfmilter: %v\n%s", err, out)
			}
		}
	})
	aptGet(t, "install", "--no-install-recommends", abs)
	pkgCheckInstalled(t, version)

	// The administrator's edit: check loopback clients (the test's clients
	// are on loopback) and put the HTTP listener on a free port. Then run
	// the unit's command line under the package's user.
	cfg, err := os.ReadFile(pkgConfig)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(cfg), "trusted_networks:\n  - 127.0.0.0/8\n  - ::1/128\n", "trusted_networks: []\n", 1)
	edited = strings.Replace(edited, "http_listen: 127.0.0.1:9466\n", fmt.Sprintf("http_listen: 127.0.0.1:%d\n", freePort(t)), 1)
	if edited == string(cfg) || strings.Contains(edited, "127.0.0.0/8\n  - ::1") {
		t.Fatalf("%s no longer has the trusted_networks and http_listen lines this test edits:\n%s", pkgConfig, cfg)
	}
	if err := os.WriteFile(pkgConfig, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	pkgMailThrough(t)

	// An upgrade to a later version keeps the edited conffile (dpkg asks
	// nothing: the packaged file is the same in both versions).
	next := version + "+1"
	dist2 := t.TempDir()
	pkgBuild(t, dist2, next)
	aptGet(t, "install", "--no-install-recommends", filepath.Join(dist2, "spfmilter_"+next+"_"+runtime.GOARCH+".deb"))
	if v, err := exec.Command("dpkg-query", "-W", "-f=${Version}", "spfmilter").Output(); err != nil || string(v) != next {
		t.Errorf("after the upgrade, dpkg has version %q (%v), want %s", v, err, next)
	}
	if got, err := os.ReadFile(pkgConfig); err != nil || string(got) != edited {
		t.Errorf("the upgrade replaced the edited %s: %v\n%s", pkgConfig, err, got)
	}
	if _, err := os.Stat(pkgWants); err != nil {
		t.Errorf("the upgrade lost the enabled unit: %v", err)
	}

	// Remove: the program goes, the configuration and the user stay.
	aptGet(t, "remove", "spfmilter")
	if st := pkgInstalled(); st != "deinstall ok config-files" {
		t.Errorf("after remove, dpkg says %q, want config-files", st)
	}
	for _, gone := range []string{"/usr/sbin/spfmilter", pkgUnit} {
		if _, err := os.Stat(gone); err == nil {
			t.Errorf("%s is still there after remove", gone)
		}
	}
	if _, err := os.Stat(pkgConfig); err != nil {
		t.Errorf("remove took the configuration: %v", err)
	}
	// Purge: the configuration and the socket directory go, the user stays.
	aptGet(t, "purge", "spfmilter")
	if st := pkgInstalled(); st != "" && st != "unknown ok not-installed" {
		t.Errorf("after purge, dpkg says %q", st)
	}
	for _, gone := range []string{"/etc/spfmilter", pkgSockDir, pkgWants} {
		if _, err := os.Lstat(gone); err == nil {
			t.Errorf("%s is still there after purge", gone)
		}
	}
	if _, err := user.Lookup("spfmilter"); err != nil {
		t.Errorf("purge removed the spfmilter user (Debian keeps system users): %v", err)
	}
}

// pkgCheckDeb reads the .deb with dpkg-deb and lintian.
func pkgCheckDeb(t *testing.T, deb, version string) {
	t.Helper()
	info, err := runCmd(time.Minute, "dpkg-deb", "--info", deb)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"Package: spfmilter\n", "Version: " + version + "\n", "Architecture: " + runtime.GOARCH + "\n", "Depends: adduser\n", "postinst", "postrm", "prerm"} {
		if !strings.Contains(info, w) {
			t.Errorf("dpkg-deb --info lacks %q:\n%s", w, info)
		}
	}
	conffiles, err := runCmd(time.Minute, "dpkg-deb", "--info", deb, "conffiles")
	if err != nil || strings.TrimSpace(conffiles) != pkgConfig {
		t.Errorf("conffiles = %q (%v), want %s alone", conffiles, err, pkgConfig)
	}
	contents, err := runCmd(time.Minute, "dpkg-deb", "--contents", deb)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range [][2]string{
		{"-rwxr-xr-x", "/usr/sbin/spfmilter"},
		{"-rw-r--r--", "/lib/systemd/system/spfmilter.service"},
		{"-rw-r--r--", pkgConfig},
		{"-rw-r--r--", "/usr/share/man/man8/spfmilter.8.gz"},
		{"-rw-r--r--", "/usr/share/man/man5/spfmilter.yaml.5.gz"},
		{"-rw-r--r--", "/usr/share/doc/spfmilter/copyright"},
		{"-rw-r--r--", "/usr/share/doc/spfmilter/changelog.gz"},
	} {
		re := "(?m)^" + regexp.QuoteMeta(w[0]+" root/root ") + ".* " + regexp.QuoteMeta("."+w[1]) + "$"
		if !regexp.MustCompile(re).MatchString(contents) {
			t.Errorf("dpkg-deb --contents lacks %s %s:\n%s", w[0], w[1], contents)
		}
	}
	// No error and no warning; the one override kept
	// (statically-linked-binary) is justified in the override file,
	// deploy/package/lintian/spfmilter.
	out, err := runCmd(3*time.Minute, "lintian", "--display-info", "--fail-on", "error,warning", deb)
	var tags []string
	for _, l := range strings.Split(out, "\n") {
		if len(l) > 2 && l[1] == ':' && strings.Contains("EWIPX", l[:1]) {
			tags = append(tags, l)
		}
	}
	if err != nil || slices.ContainsFunc(tags, func(l string) bool { return l[0] == 'E' || l[0] == 'W' }) {
		t.Errorf("lintian: %v\n%s", err, out)
	}
	t.Logf("lintian %s: %d tags, none an error or warning: %q", filepath.Base(deb), len(tags), tags)
}

// pkgCheckRPM reads an .rpm with rpm.
func pkgCheckRPM(t *testing.T, path, arch string) {
	t.Helper()
	list, err := runCmd(time.Minute, "rpm", "-qlp", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"/usr/sbin/spfmilter", pkgUnit, pkgConfig, "/usr/share/man/man8/spfmilter.8.gz", "/usr/share/man/man5/spfmilter.yaml.5.gz"} {
		if !slices.Contains(strings.Fields(list), w) {
			t.Errorf("rpm -qlp %s lacks %s:\n%s", filepath.Base(path), w, list)
		}
	}
	q, err := runCmd(time.Minute, "rpm", "-qp", "--qf", "%{NAME} %{ARCH}\n", path)
	if err != nil || strings.TrimSpace(q) != "spfmilter "+arch {
		t.Errorf("rpm -qp %s: %q %v, want spfmilter %s", filepath.Base(path), q, err, arch)
	}
	cfg, err := runCmd(time.Minute, "rpm", "-qp", "--configfiles", path)
	if err != nil || strings.TrimSpace(cfg) != pkgConfig {
		t.Errorf("rpm --configfiles %s: %q %v", filepath.Base(path), cfg, err)
	}
	scripts, err := runCmd(time.Minute, "rpm", "-qp", "--scripts", path)
	if err != nil || !strings.Contains(scripts, "useradd --system") || !strings.Contains(scripts, "preset spfmilter.service") {
		t.Errorf("rpm --scripts %s lack the user and the unit preset: %v\n%s", filepath.Base(path), err, scripts)
	}
}

// pkgCheckInstalled looks at what the install left.
func pkgCheckInstalled(t *testing.T, version string) {
	t.Helper()
	if st := pkgInstalled(); st != "install ok installed" {
		t.Fatalf("after install, dpkg says %q", st)
	}
	out, err := runCmd(time.Minute, "/usr/sbin/spfmilter", "version")
	if err != nil || !strings.HasPrefix(out, "spfmilter "+version+" ") {
		t.Errorf("spfmilter version: %q %v, want version %s", out, err, version)
	}
	u, err := user.Lookup("spfmilter")
	if err != nil {
		t.Fatalf("no spfmilter user: %v", err)
	}
	if uid, _ := strconv.Atoi(u.Uid); uid == 0 || uid >= 1000 {
		t.Errorf("spfmilter's uid %s is not a system uid", u.Uid)
	}
	// Enabled (deb-systemd-helper's symlink), not started: nothing runs.
	if l, err := os.Readlink(pkgWants); err != nil || l != pkgUnit {
		t.Errorf("the unit is not enabled: %s -> %q %v", pkgWants, l, err)
	}
	// The socket directory for the chrooted Postfix: the postfix group,
	// setgid so that the socket gets that group too.
	fi, err := os.Stat(pkgSockDir)
	if err != nil {
		t.Fatalf("no socket directory: %v", err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	_, pgid := postfixIDs(t)
	if uid, _ := strconv.Atoi(u.Uid); int(st.Uid) != uid || int(st.Gid) != pgid || fi.Mode().Perm() != 0o750 || fi.Mode()&os.ModeSetgid == 0 {
		t.Errorf("%s is %v %d:%d, want drwxr-s--- spfmilter:postfix", pkgSockDir, fi.Mode(), st.Uid, st.Gid)
	}
	// The installed unit, with the installed binary and configuration.
	analyze := needProgram(t, "systemd-analyze")
	if out, err := runCmd(time.Minute, analyze, "verify", "--man=no", pkgUnit); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify %s: %v\n%s", pkgUnit, err, out)
	}
	if out, err := runCmd(time.Minute, analyze, "security", "--offline=yes", "--threshold=20", pkgUnit); err != nil {
		t.Errorf("systemd-analyze security %s: %v\n%s", pkgUnit, err, out)
	}
	if out, err := runCmd(time.Minute, "/usr/sbin/spfmilter", "serve", "--config", pkgConfig, "--config.check"); err != nil {
		t.Errorf("the packaged configuration: %v\n%s", err, out)
	}
	if out, err := runCmd(time.Minute, "man", "-w", "spfmilter.yaml"); err != nil || !strings.Contains(out, "spfmilter.yaml.5") {
		t.Errorf("man -w spfmilter.yaml: %q %v", out, err)
	}
}

// pkgExecStart is the installed unit's ExecStart command line.
func pkgExecStart(t *testing.T) []string {
	t.Helper()
	text, err := os.ReadFile(pkgUnit)
	if err != nil {
		t.Fatal(err)
	}
	unit := deployUnit(string(text))
	start := unit["Service.ExecStart"]
	if len(start) != 1 || !strings.HasPrefix(start[0], "/usr/sbin/spfmilter ") {
		t.Fatalf("ExecStart = %q, want one /usr/sbin/spfmilter command line", start)
	}
	if u := unit["Service.User"]; len(u) != 1 || u[0] != "spfmilter" {
		t.Fatalf("User = %q, want spfmilter (the package's user)", u)
	}
	return strings.Fields(start[0])
}

// pkgMailThrough runs the installed daemon as the unit would (its command
// line, its user and group, its umask), with a real Postfix relaying to the
// sink through the packaged unix socket, and checks the fields it adds.
func pkgMailThrough(t *testing.T) {
	t.Helper()
	argv := pkgExecStart(t)
	dir := openRunDir(t)
	dns := startDNS(t)
	ns := newNamespace(t, dir, strings.Split(dns.Addr(), ":")[0])
	daemonArgs := append([]string{"--reuid=spfmilter", "--regid=spfmilter", "--init-groups", "--",
		"sh", "-c", `umask 0077 && exec "$@"`, "sh"}, argv...)
	p := startProc(t, "installed spfmilter", ns.command("setpriv", daemonArgs...), nil)
	sock := filepath.Join(pkgSockDir, "spfmilter.sock")
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("unix", sock, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if p.hasExited() || time.Now().After(deadline) {
			t.Fatalf("the installed daemon does not listen on %s: %v\n%s", sock, err, p.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	_, pgid := postfixIDs(t)
	if st := fi.Sys().(*syscall.Stat_t); int(st.Gid) != pgid || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket %s is %v group %d, want srw-rw---- group postfix", sock, fi.Mode(), st.Gid)
	}

	s := startSink(t, dir)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	startPostfix(t, dir, ns, s.Port, []postfixListener{{Addr: addr, Milter: "unix:" + sock}})
	id := fmt.Sprintf("pkg-%d", time.Now().UnixNano())
	c := dialSMTP(t, addr, clientHELO)
	if rep := c.send(t, message{ID: id, From: "alice@" + passDomain}); rep != nil {
		t.Fatalf("Postfix refused the message: %v", rep)
	}
	c.quit()
	m := s.wait(t, id, time.Minute)
	var got []string
	for _, f := range m.Header {
		if strings.EqualFold(f.Name, "Received-SPF") || strings.EqualFold(f.Name, "Authentication-Results") {
			got = append(got, f.Name+": "+f.Value)
		}
	}
	joined := strings.Join(got, "\n")
	for _, w := range []string{"Received-SPF: pass ", "Authentication-Results: " + authservID + ";", "spf=pass smtp.mailfrom=alice@" + passDomain} {
		if !strings.Contains(joined, w) {
			t.Errorf("the relayed message lacks %q; its SPF fields:\n%s", w, joined)
		}
	}
	t.Logf("fields added by the installed daemon:\n%s", joined)

	// SIGTERM, as systemctl stop sends; the daemon drains and exits.
	p.cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck // checked by the wait
	if !p.waitExit(45 * time.Second) {
		t.Errorf("the installed daemon did not stop on SIGTERM")
	}
	sc := bufio.NewScanner(strings.NewReader(p.out.String()))
	for sc.Scan() {
		if strings.Contains(sc.Text(), "level=ERROR") {
			t.Errorf("daemon log: %s", sc.Text())
		}
	}
}

// TestPackageFiles checks, without installing anything, that the packaged
// configuration, the unit and the maintainer scripts agree: the config
// passes the daemon's check, marks only (no reject), and puts the socket in
// the directory the postinst makes and the unit lets the daemon write.
func TestPackageFiles(t *testing.T) {
	const cfgPath = "../deploy/package/spfmilter.yaml"
	out, err := runCmd(time.Minute, milterBinary(t), "serve", "--config", cfgPath, "--config.check")
	if err != nil {
		t.Fatalf("the packaged configuration: %v\n%s", err, out)
	}
	data, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Listen     string   `yaml:"listen"`
		ListenMode string   `yaml:"listen_mode"`
		Reject     []string `yaml:"reject"`
		RejectHELO []string `yaml:"reject_helo"`
	}
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Reject) > 0 || len(cfg.RejectHELO) > 0 {
		t.Errorf("the packaged configuration rejects %v / %v; it must mark only", cfg.Reject, cfg.RejectHELO)
	}
	if cfg.Listen != "unix:"+pkgSockDir+"/spfmilter.sock" || cfg.ListenMode != "0660" {
		t.Errorf("listen %q mode %q, want unix:%s/spfmilter.sock mode 0660", cfg.Listen, cfg.ListenMode, pkgSockDir)
	}
	for _, alt := range []string{"# listen: unix:/run/spfmilter/spfmilter.sock", "# listen: inet:127.0.0.1:8895"} {
		if !strings.Contains(string(data), alt+"\n") {
			t.Errorf("the packaged configuration lacks the commented alternative %q", alt)
		}
	}
	unitText, err := os.ReadFile(filepath.Join(deployDir, "systemd/spfmilter.service"))
	if err != nil {
		t.Fatal(err)
	}
	unit := deployUnit(string(unitText))
	if !slices.Contains(unit["Service.ReadWritePaths"], "-"+pkgSockDir) {
		t.Errorf("ReadWritePaths = %q, want -%s (the socket directory)", unit["Service.ReadWritePaths"], pkgSockDir)
	}
	if !slices.Equal(unit["Service.RuntimeDirectory"], []string{"spfmilter"}) {
		t.Errorf("RuntimeDirectory = %q, want spfmilter (the commented /run/spfmilter socket)", unit["Service.RuntimeDirectory"])
	}
	// The maintainer scripts parse as POSIX sh (dash, Debian's /bin/sh);
	// the .rpm's are only read here, with no rpm system to run them on.
	dash := needProgram(t, "dash")
	for _, script := range []string{"deb/postinst", "deb/prerm", "deb/postrm", "rpm/pre", "rpm/post", "rpm/preun", "rpm/postun"} {
		if out, err := runCmd(time.Minute, dash, "-n", filepath.Join(deployDir, "package", script)); err != nil {
			t.Errorf("%s: %v\n%s", script, err, out)
		}
	}
	for _, script := range []string{"deb/postinst", "rpm/post"} {
		text, err := os.ReadFile(filepath.Join(deployDir, "package", script))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(text), "SOCKDIR="+pkgSockDir+"\n") {
			t.Errorf("%s does not make %s", script, pkgSockDir)
		}
	}
}
