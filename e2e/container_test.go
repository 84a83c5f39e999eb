package e2e

// The container test builds the repository's real Dockerfile with buildah and
// then runs the binary from the built image's root file system, the way a
// container runtime would: chrooted into it, as the image's user. No base
// image can be pulled here, so the build uses two local stand-ins passed as
// the Dockerfile's build arguments: a Go image made from this machine's Go
// toolchain (with the module cache served as a file:// GOPROXY, so the build
// needs no network) and an almost empty runtime root.

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-milter"

	"github.com/spfmilter/spfmilter/spf/spftest"
)

// ctrBuildah runs buildah against a private, throw-away storage root.
type ctrBuildah struct {
	t       *testing.T
	bin     string
	dir     string // holds the storage root and runroot
	timeout time.Duration
}

func (b *ctrBuildah) cmd(ctx context.Context, args ...string) *exec.Cmd {
	global := []string{
		"--root", filepath.Join(b.dir, "root"),
		"--runroot", filepath.Join(b.dir, "runroot"),
		"--storage-driver", "vfs",
	}
	c := exec.CommandContext(ctx, b.bin, append(global, args...)...)
	// buildah keeps RUN --mount=type=cache directories under TMPDIR
	// (/var/tmp by default); keep them in the throw-away directory too.
	c.Env = append(os.Environ(), "TMPDIR="+filepath.Join(b.dir, "tmp"))
	return c
}

// run runs buildah and returns its trimmed standard output; any failure ends
// the test with buildah's output.
func (b *ctrBuildah) run(args ...string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	c := b.cmd(ctx, args...)
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		b.t.Fatalf("buildah %s: %v\nstdout:\n%s\nstderr:\n%s",
			strings.Join(args, " "), err, ctrTail(stdout.String()), ctrTail(stderr.String()))
	}
	return strings.TrimSpace(stdout.String())
}

// ctrTail keeps the end of a long build log.
func ctrTail(s string) string {
	const max = 8000
	if len(s) > max {
		return "…" + s[len(s)-max:]
	}
	return s
}

// scratch makes an empty working container, lets fill populate its root and
// commits it as image name with the given buildah config options.
func (b *ctrBuildah) scratch(name string, fill func(root string), config ...string) {
	b.t.Helper()
	ctr := b.run("from", "scratch")
	root := b.run("mount", ctr)
	fill(root)
	b.run("umount", ctr)
	if len(config) > 0 {
		b.run(append(append([]string{"config"}, config...), ctr)...)
	}
	b.run("commit", "--quiet", ctr, name)
	b.run("rm", ctr)
}

// ctrGoImage is the stand-in for golang:*-bookworm: GOROOT, a /bin/sh for
// the Dockerfile's shell-form RUN steps, and the module download cache
// served as a file:// proxy.
func ctrGoImage(t *testing.T, b *ctrBuildah) string {
	t.Helper()
	goroot := ctrGoEnv(t, "GOROOT")
	modcache := ctrGoEnv(t, "GOMODCACHE")
	// Make sure every module the build needs is in the host's cache.
	dl := exec.Command("go", "mod", "download")
	dl.Dir = ".."
	if out, err := dl.CombinedOutput(); err != nil {
		t.Fatalf("go mod download: %v\n%s", err, out)
	}
	sh, err := filepath.EvalSymlinks("/bin/sh")
	if err != nil {
		t.Fatalf("no /bin/sh to put in the Go stand-in image: %v", err)
	}
	libs := ctrSharedLibs(t, sh)

	const name = "localhost/spfmilter-ctr-go:test"
	b.scratch(name, func(root string) {
		for _, d := range []string{"usr/local/go", "bin", "tmp", "etc", "root", "go", "opt/goproxy"} {
			ctrMkdir(t, filepath.Join(root, d))
		}
		ctrChmod(t, filepath.Join(root, "tmp"), os.ModeSticky|0o777)
		for _, e := range []string{"bin", "pkg", "src", "lib", "go.env", "VERSION"} {
			if _, err := os.Stat(filepath.Join(goroot, e)); err == nil {
				ctrCopy(t, filepath.Join(goroot, e), filepath.Join(root, "usr/local/go"))
			}
		}
		ctrCopy(t, filepath.Join(modcache, "cache", "download")+"/.", filepath.Join(root, "opt/goproxy"))
		ctrCopyFile(t, sh, filepath.Join(root, "bin/sh"))
		for _, lib := range libs {
			ctrMkdir(t, filepath.Join(root, filepath.Dir(lib)))
			ctrCopyFile(t, lib, filepath.Join(root, lib))
		}
		ctrWrite(t, filepath.Join(root, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")
		ctrWrite(t, filepath.Join(root, "etc/group"), "root:x:0:\n")
	},
		"--env", "PATH=/go/bin:/usr/local/go/bin:/bin",
		"--env", "GOPATH=/go",
		"--env", "HOME=/root",
		"--env", "GOTOOLCHAIN=local",
		"--env", "GOPROXY=file:///opt/goproxy",
		"--env", "GOSUMDB=off",
		"--workingdir", "/go",
	)
	return name
}

// ctrRuntimeImage is the stand-in for distroless/static:nonroot: no shell, no
// libraries, just the users and a /tmp.
func ctrRuntimeImage(t *testing.T, b *ctrBuildah) string {
	t.Helper()
	const name = "localhost/spfmilter-ctr-runtime:test"
	b.scratch(name, func(root string) {
		ctrMkdir(t, filepath.Join(root, "etc"))
		ctrMkdir(t, filepath.Join(root, "tmp"))
		ctrChmod(t, filepath.Join(root, "tmp"), os.ModeSticky|0o777)
		ctrWrite(t, filepath.Join(root, "etc/passwd"),
			"root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")
		ctrWrite(t, filepath.Join(root, "etc/group"), "root:x:0:\nnonroot:x:65532:\n")
	})
	return name
}

func ctrGoEnv(t *testing.T, key string) string {
	t.Helper()
	out, err := exec.Command("go", "env", key).Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		t.Fatalf("go env %s: %v", key, err)
	}
	return strings.TrimSpace(string(out))
}

// ctrSharedLibs lists the shared objects (including the dynamic loader) that
// the ELF program at path needs, as reported by ldd.
func ctrSharedLibs(t *testing.T, path string) []string {
	t.Helper()
	out, err := exec.Command("ldd", path).Output()
	if err != nil {
		// "not a dynamic executable": nothing to copy.
		return nil
	}
	var libs []string
	for _, line := range strings.Split(string(out), "\n") {
		for _, f := range strings.Fields(line) {
			if strings.HasPrefix(f, "/") {
				libs = append(libs, f)
			}
		}
	}
	return libs
}

func ctrMkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func ctrChmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func ctrWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// ctrCopy copies a tree with cp -a, keeping modes and symlinks.
func ctrCopy(t *testing.T, src, dstDir string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", src, dstDir).CombinedOutput(); err != nil {
		t.Fatalf("cp -a %s %s: %v\n%s", src, dstDir, err, out)
	}
}

// ctrCopyFile copies one file, following symlinks.
func ctrCopyFile(t *testing.T, src, dst string) {
	t.Helper()
	if out, err := exec.Command("cp", "-L", "-p", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp -L %s %s: %v\n%s", src, dst, err, out)
	}
}

// ctrImageConfig is the part of a Docker-format image config the test checks.
type ctrImageConfig struct {
	User         string
	ExposedPorts map[string]struct{}
	Entrypoint   []string
	Cmd          []string
	Healthcheck  *struct {
		Test []string
	}
}

func ctrInspect(t *testing.T, b *ctrBuildah, image string) ctrImageConfig {
	t.Helper()
	var out struct {
		Docker struct {
			Config ctrImageConfig `json:"config"`
		}
	}
	if err := json.Unmarshal([]byte(b.run("inspect", "--type", "image", image)), &out); err != nil {
		t.Fatalf("buildah inspect %s: %v", image, err)
	}
	return out.Docker.Config
}

// ctrFlag returns the value of --name in args ("--name v" or "--name=v").
func ctrFlag(args []string, name string) (string, bool) {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1], true
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// ctrSetFlag returns args with the value of --name replaced by v.
func ctrSetFlag(args []string, name, v string) []string {
	out := slices.Clone(args)
	for i, a := range out {
		if a == name && i+1 < len(out) {
			out[i+1] = v
			return out
		}
		if strings.HasPrefix(a, name+"=") {
			out[i] = name + "=" + v
			return out
		}
	}
	return append(out, name, v)
}

// ctrFreePort returns a loopback TCP port that was free a moment ago; the
// binary under test needs a port number on its command line.
func ctrFreePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// ctrUser parses the image's USER ("uid" or "uid:gid", numeric).
func ctrUser(t *testing.T, user string) (uid, gid uint32) {
	t.Helper()
	u, g, hasGroup := strings.Cut(user, ":")
	if !hasGroup {
		g = u
	}
	un, err1 := strconv.ParseUint(u, 10, 32)
	gn, err2 := strconv.ParseUint(g, 10, 32)
	if err1 != nil || err2 != nil {
		t.Fatalf("image USER %q is not numeric uid[:gid]; Kubernetes cannot verify runAsNonRoot for a name", user)
	}
	return uint32(un), uint32(gn)
}

func TestContainerImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a container image; skipped in -short mode")
	}
	bin := needProgram(t, "buildah")
	if os.Geteuid() != 0 {
		unavailable(t, "the container test must run as root (buildah with a private vfs store, chroot into the image)")
	}

	needFile(t, "../main.go", "the spfmilter main package to build the image from")

	dir, err := os.MkdirTemp("", "spfmilter-ctr-")
	if err != nil {
		t.Fatal(err)
	}
	b := &ctrBuildah{t: t, bin: bin, dir: dir, timeout: 6 * time.Minute}
	ctrMkdir(t, filepath.Join(dir, "tmp"))
	t.Cleanup(func() {
		// Best effort: unmount and remove working containers, then the store.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = b.cmd(ctx, "umount", "--all").Run()
		_ = b.cmd(ctx, "rm", "--all").Run()
		if err := os.RemoveAll(dir); err != nil {
			t.Logf("removing buildah store %s: %v", dir, err)
		}
	})

	goImage := ctrGoImage(t, b)
	runtimeImage := ctrRuntimeImage(t, b)

	const image = "localhost/spfmilter:ctr-test"
	const version = "0.0.0-ctr-test"
	start := time.Now()
	b.run("bud",
		"--isolation", "chroot",
		"--format", "docker", // the OCI format has no HEALTHCHECK
		"--pull=never",
		"--build-arg", "GO_IMAGE="+goImage,
		"--build-arg", "RUNTIME_IMAGE="+runtimeImage,
		"--build-arg", "VERSION="+version,
		"--file", "../Dockerfile",
		"--tag", image,
		"..",
	)
	t.Logf("image built in %s", time.Since(start).Round(time.Second))

	// The image's configuration.
	cfg := ctrInspect(t, b, image)
	uid, gid := ctrUser(t, cfg.User)
	if uid == 0 {
		t.Errorf("image USER = %q, want a non-root user", cfg.User)
	}
	for _, p := range []string{"8895/tcp", "9466/tcp"} {
		if _, ok := cfg.ExposedPorts[p]; !ok {
			t.Errorf("image does not EXPOSE %s (ExposedPorts %v)", p, cfg.ExposedPorts)
		}
	}
	if !slices.Equal(cfg.Entrypoint, []string{"/spfmilter"}) {
		t.Errorf("ENTRYPOINT = %q, want [/spfmilter]", cfg.Entrypoint)
	}
	if cfg.Healthcheck == nil || !slices.Equal(cfg.Healthcheck.Test, []string{"CMD", "/spfmilter", "healthcheck"}) {
		t.Errorf("HEALTHCHECK = %+v, want CMD [/spfmilter healthcheck]", cfg.Healthcheck)
	}
	// The default command must listen on all of the container's interfaces
	// and on the exposed ports; the health check's default URL is port 9466.
	if v, _ := ctrFlag(cfg.Cmd, "--listen"); v != "inet:0.0.0.0:8895" {
		t.Errorf("CMD %q: --listen = %q, want inet:0.0.0.0:8895", cfg.Cmd, v)
	}
	if v, _ := ctrFlag(cfg.Cmd, "--http-listen"); v != "0.0.0.0:9466" {
		t.Errorf("CMD %q: --http-listen = %q, want 0.0.0.0:9466", cfg.Cmd, v)
	}
	if t.Failed() {
		t.FailNow()
	}

	// The image's file system.
	ctr := b.run("from", "--pull=never", image)
	root := b.run("mount", ctr)
	f, err := elf.Open(filepath.Join(root, "spfmilter"))
	if err != nil {
		t.Fatalf("/spfmilter in the image: %v", err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("/spfmilter in the image is dynamically linked; the runtime image has no libc")
		}
	}
	f.Close()

	// Run it as a container runtime would: chrooted into the image's root,
	// as the image's user, with the image's entrypoint and command, only
	// moved to loopback ports and pointed at a test DNS server.
	world := &spftest.Resolver{
		TXT: map[string][]string{
			"example.org":      {"v=spf1 ip4:192.0.2.0/24 -all"},
			"mail.example.org": {"v=spf1 a -all"},
		},
		A: map[string][]netip.Addr{
			"mail.example.org": {netip.MustParseAddr("192.0.2.10")},
		},
	}
	dns := spftest.NewServer(t, world)

	milterAddr := fmt.Sprintf("127.0.0.1:%d", ctrFreePort(t))
	httpAddr := fmt.Sprintf("127.0.0.1:%d", ctrFreePort(t))
	args := ctrSetFlag(cfg.Cmd, "--listen", "inet:"+milterAddr)
	args = ctrSetFlag(args, "--http-listen", httpAddr)
	args = append(args, "--resolver", dns.Addr(), "--authserv-id", "mx.example.net")

	chroot := func(args ...string) *exec.Cmd {
		c := exec.Command(cfg.Entrypoint[0], args...)
		c.Dir = "/"
		c.Env = []string{"PATH=/"}
		c.SysProcAttr = &syscall.SysProcAttr{
			Chroot:     root,
			Credential: &syscall.Credential{Uid: uid, Gid: gid, NoSetGroups: true},
		}
		return c
	}

	var daemonLog lockedBuffer
	daemon := chroot(args...)
	daemon.Stdout, daemon.Stderr = &daemonLog, &daemonLog
	if err := daemon.Start(); err != nil {
		t.Fatalf("start %q in the image root: %v", args, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- daemon.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = daemon.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("daemon output:\n%s", ctrTail(daemonLog.String()))
		}
	})

	ctrWaitReady(t, "http://"+httpAddr+"/-/ready", exited)

	// One message through the milter protocol.
	mods, act := ctrSendMessage(t, milterAddr)
	if act.Code != milter.ActAccept && act.Code != milter.ActContinue {
		t.Errorf("end of message: action %q, want accept or continue", act.Code)
	}
	var spfHeader, arHeader string
	for _, m := range mods {
		if m.Code != milter.ActInsertHeader && m.Code != milter.ActAddHeader {
			continue
		}
		switch strings.ToLower(m.HeaderName) {
		case "received-spf":
			spfHeader = m.HeaderValue
		case "authentication-results":
			arHeader = m.HeaderValue
		}
	}
	// RFC 7208 section 9.1: the Received-SPF value starts with the result.
	if f := strings.Fields(spfHeader); len(f) == 0 || f[0] != "pass" {
		t.Errorf("Received-SPF = %q, want a pass result (modifications %+v)", spfHeader, mods)
	}
	// RFC 8601 section 2.2: authserv-id first, then spf=pass for the
	// MAIL FROM identity.
	ar := strings.Join(strings.Fields(arHeader), " ")
	if !strings.HasPrefix(ar, "mx.example.net;") || !strings.Contains(ar, "spf=pass") ||
		!strings.Contains(ar, "smtp.mailfrom=") {
		t.Errorf("Authentication-Results = %q, want mx.example.net; spf=pass smtp.mailfrom=…", arHeader)
	}
	if q := dns.Queries(); len(q) == 0 {
		t.Errorf("the daemon asked the test DNS server nothing")
	}

	// The health check the image declares, run the same way.
	hc := chroot("healthcheck", "--url", "http://"+httpAddr+"/-/healthy")
	if out, err := hc.CombinedOutput(); err != nil {
		t.Errorf("healthcheck against the running daemon: %v\n%s", err, out)
	}

	// SIGTERM stops it cleanly.
	if err := daemon.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Errorf("daemon exit after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("daemon still running 30s after SIGTERM")
	}

	// With nothing listening, the health check must fail.
	hc = chroot("healthcheck", "--url", "http://"+httpAddr+"/-/healthy")
	out, err := hc.CombinedOutput()
	if ee := (*exec.ExitError)(nil); !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("healthcheck with the daemon stopped: %v, want exit status 1\n%s", err, out)
	}

	b.run("umount", ctr)
	b.run("rm", ctr)
}

// ctrWaitReady polls url until it answers 200, the daemon exits, or 30 s pass.
func ctrWaitReady(t *testing.T, url string, exited <-chan error) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for attempt := 0; time.Now().Before(deadline); attempt++ {
		select {
		case err := <-exited:
			t.Fatalf("daemon exited before it was ready: %v", err)
		default:
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s not ready within 30s", url)
}

// ctrSendMessage runs one SMTP transaction from 192.0.2.10 (mail.example.org)
// for alice@example.org through the milter at addr.
func ctrSendMessage(t *testing.T, addr string) ([]milter.ModifyAction, *milter.Action) {
	t.Helper()
	s, done := milterSession(t, addr)
	defer done()

	step := func(what string, act *milter.Action, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("milter %s: %v", what, err)
		}
		if act.Code != milter.ActContinue {
			t.Fatalf("milter %s: action %q, want continue", what, act.Code)
		}
	}
	if err := s.Macros(milter.CodeConn, "j", "mx.example.net"); err != nil {
		t.Fatal(err)
	}
	act, err := s.Conn("mail.example.org", milter.FamilyInet, 41000, "192.0.2.10")
	step("connect", act, err)
	act, err = s.Helo("mail.example.org")
	step("HELO", act, err)
	if err := s.Macros(milter.CodeMail, "i", "4ABCDEF"); err != nil {
		t.Fatal(err)
	}
	act, err = s.Mail("<alice@example.org>", nil)
	step("MAIL FROM", act, err)
	act, err = s.Rcpt("<bob@example.net>", nil)
	step("RCPT TO", act, err)
	for _, h := range [][2]string{
		{"From", "Alice <alice@example.org>"},
		{"To", "bob@example.net"},
		{"Subject", "container test"},
	} {
		act, err = s.HeaderField(h[0], h[1])
		step("header", act, err)
	}
	act, err = s.HeaderEnd()
	step("end of headers", act, err)
	act, err = s.BodyChunk([]byte("Hello.\r\n"))
	step("body", act, err)
	mods, act, err := s.End()
	if err != nil {
		t.Fatalf("milter end of message: %v", err)
	}
	return mods, act
}
