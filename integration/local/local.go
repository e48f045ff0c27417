// Package local starts the real components pgsvc works with (etcd and
// HAProxy from Debian's packages) as processes on loopback, in temp dirs on
// free ports, for tests and benchmarks. A missing binary fails the test: CI
// must install it (.ci/run), never skip.
package local

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// FreePort returns a TCP port free on ip at the time of the call.
func FreePort(t testing.TB, ip string) int {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			t.Fatalf("free port on %s: %v", ip, err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if handedOut.claim(port) {
			return port
		}
	}
	t.Fatalf("free port on %s: the kernel kept offering ports this test process already handed out", ip)
	return 0
}

// handedOut is every port FreePort returned in this test process: a port
// is free only until someone binds it, and in a quiet network namespace
// (a container) the kernel offers a just-closed port again at once, so
// two calls in a row returned the same port (two services on one port).
// The one piece of package state here, as the kernel's is process-wide.
var handedOut = &portSet{ports: map[int]bool{}}

type portSet struct {
	mu    sync.Mutex
	ports map[int]bool
}

func (p *portSet) claim(port int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ports[port] {
		return false
	}
	p.ports[port] = true
	return true
}

func need(t testing.TB, bin string) string {
	t.Helper()
	p, err := exec.LookPath(bin)
	if err != nil {
		t.Fatalf("%s is not installed (Debian package needed; .ci/run installs it): %v", bin, err)
	}
	return p
}

// Etcd is a single-node etcd 3.4 on loopback.
type Etcd struct {
	t        testing.TB
	Endpoint string
	dir      string
	args     []string
	cmd      *exec.Cmd
	// TLS is set by StartEtcdTLS: files and the client config to use them.
	TLS *EtcdTLS
}

// StartEtcd starts etcd and waits until it answers.
func StartEtcd(t testing.TB) *Etcd {
	t.Helper()
	bin := need(t, "etcd")
	dir := t.TempDir()
	client, peer := FreePort(t, "127.0.0.1"), FreePort(t, "127.0.0.1")
	cu, pu := fmt.Sprintf("http://127.0.0.1:%d", client), fmt.Sprintf("http://127.0.0.1:%d", peer)
	e := &Etcd{t: t, Endpoint: cu, dir: dir, args: []string{bin,
		"--name", "test", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", cu, "--advertise-client-urls", cu,
		"--listen-peer-urls", pu, "--initial-advertise-peer-urls", pu,
		"--initial-cluster", "test=" + pu, "--logger", "zap", "--log-outputs", filepath.Join(dir, "etcd.log")}}
	e.Start()
	t.Cleanup(e.Stop)
	return e
}

// Start (re)starts etcd on the same data dir and waits until it answers.
func (e *Etcd) Start() {
	e.t.Helper()
	e.cmd = exec.Command(e.args[0], e.args[1:]...)
	e.cmd.Env = append(os.Environ(), "ETCD_UNSUPPORTED_ARCH=amd64")
	if err := e.cmd.Start(); err != nil {
		e.t.Fatalf("start etcd: %v", err)
	}
	cli := e.Client()
	defer cli.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cli.Get(ctx, "probe")
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(e.dir, "etcd.log"))
			e.t.Fatalf("etcd did not start: %v\n%s", err, tail(string(log), 2000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop kills etcd (a crash, as far as clients can tell).
func (e *Etcd) Stop() {
	if e.cmd != nil && e.cmd.Process != nil {
		_ = e.cmd.Process.Kill()
		_ = e.cmd.Wait()
		e.cmd = nil
	}
}

// Client returns a new client for this etcd.
func (e *Etcd) Client() *clientv3.Client {
	e.t.Helper()
	cfg := clientv3.Config{Endpoints: []string{e.Endpoint}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()}
	if e.TLS != nil {
		cfg.TLS = e.TLS.Config
		cfg.Username, cfg.Password = e.TLS.rootUser, e.TLS.rootPassword
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		e.t.Fatalf("etcd client: %v", err)
	}
	return cli
}

// HAProxy is a master-worker HAProxy (the one on PATH: 2.6 on bookworm, 3.0
// on trixie) loading a global file and a config dir, with a stats socket and
// a master socket.
type HAProxy struct {
	t            testing.TB
	Version      Version // of the binary, from haproxy -v
	Dir          string
	ConfDir      string
	GlobalConfig string
	StatsSocket  string
	MasterSocket string
	PIDFile      string
	// Single runs HAProxy without master-worker (no master socket, no
	// reloads). Needed for thousands of service files: the 2.6 master
	// exports every config path in HAPROXY_CFGFILES when it re-executes
	// itself, and past Linux's 128 KiB limit for one environment string
	// that exec fails ("Argument list too long").
	Single bool
	cmd    *exec.Cmd
}

// Version is an HAProxy release, e.g. 3.0.11.
type Version struct {
	Major, Minor int
	Line         string // haproxy -v's first line
}

// AtLeast reports whether v is major.minor or newer.
func (v Version) AtLeast(major, minor int) bool {
	return v.Major > major || v.Major == major && v.Minor >= minor
}

// HAProxyVersion is the version of the haproxy on PATH, also logged so that
// every test's output says which HAProxy it ran against.
func HAProxyVersion(t testing.TB) Version {
	t.Helper()
	need(t, "haproxy")
	out, err := exec.Command("haproxy", "-v").CombinedOutput()
	if err != nil {
		t.Fatalf("haproxy -v: %v: %s", err, out)
	}
	v := Version{Line: strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])}
	f := strings.Fields(v.Line) // HA-Proxy version 2.6.12-1+deb12u3 2023/12/16 - https://haproxy.org/
	if len(f) < 3 {
		t.Fatalf("haproxy -v: cannot read a version from %q", v.Line)
	}
	if _, err := fmt.Sscanf(f[2], "%d.%d", &v.Major, &v.Minor); err != nil {
		t.Fatalf("haproxy -v: cannot read a version from %q: %v", v.Line, err)
	}
	t.Logf("haproxy under test: %s", v.Line)
	return v
}

// NewHAProxy prepares (but does not start) an HAProxy in a temp dir.
func NewHAProxy(t testing.TB) *HAProxy {
	t.Helper()
	need(t, "haproxy")
	// A short path: the master exports every config path in one
	// environment string (HAPROXY_CFGFILES), and 4,000 long temp paths
	// exceed Linux's limit for it ("Argument list too long").
	dir, err := os.MkdirTemp("", "hap")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	h := &HAProxy{t: t, Version: HAProxyVersion(t), Dir: dir, ConfDir: filepath.Join(dir, "conf.d"), GlobalConfig: filepath.Join(dir, "haproxy.cfg"),
		StatsSocket: filepath.Join(dir, "admin.sock"), MasterSocket: filepath.Join(dir, "master.sock"), PIDFile: filepath.Join(dir, "haproxy.pid")}
	if err := os.Mkdir(h.ConfDir, 0o700); err != nil {
		t.Fatal(err)
	}
	global := fmt.Sprintf(`global
    stats socket %s mode 600 level admin
    pidfile %s
    maxconn 2000
defaults
    mode tcp
    retries 3
    timeout queue 3s
    timeout connect 3s
    timeout check 3s
    timeout client 24h
    timeout server 24h
`, h.StatsSocket, h.PIDFile)
	if err := os.WriteFile(h.GlobalConfig, []byte(global), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Stop)
	return h
}

// Start starts HAProxy from the files on disk and waits for its stats socket.
func (h *HAProxy) Start() {
	h.t.Helper()
	_ = os.Remove(h.StatsSocket)
	args := []string{"-W", "-S", h.MasterSocket, "-f", h.GlobalConfig, "-f", h.ConfDir}
	if h.Single {
		args = []string{"-db", "-f", h.GlobalConfig, "-f", h.ConfDir}
	}
	h.cmd = exec.Command("haproxy", args...)
	log, err := os.Create(filepath.Join(h.Dir, "haproxy.log"))
	if err != nil {
		h.t.Fatal(err)
	}
	h.cmd.Stdout, h.cmd.Stderr = log, log
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := h.cmd.Start(); err != nil {
		h.t.Fatalf("start haproxy: %v", err)
	}
	deadline := time.Now().Add(60 * time.Second) // 4,000 services take seconds to load
	for {
		if answers(h.StatsSocket, "show info") && (h.Single || answers(h.MasterSocket, "show proc;quit")) {
			return
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(filepath.Join(h.Dir, "haproxy.log"))
			h.t.Fatalf("haproxy did not start:\n%s", tail(string(out), 2000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// answers reports whether a CLI socket replies to a command.
func answers(socket, command string) bool {
	c, err := net.Dial("unix", socket)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte(command + "\n")); err != nil {
		return false
	}
	buf := make([]byte, 64)
	n, _ := c.Read(buf)
	return n > 0
}

// Stop stops the master and its workers.
func (h *HAProxy) Stop() {
	if h.cmd != nil && h.cmd.Process != nil {
		_ = syscall.Kill(-h.cmd.Process.Pid, syscall.SIGKILL)
		_ = h.cmd.Wait()
		h.cmd = nil
	}
}

// Restart stops and starts HAProxy: it comes up from the files on disk.
func (h *HAProxy) Restart() {
	h.t.Helper()
	h.Stop()
	h.Start()
}

// Reload reloads HAProxy through its master socket, as an operator's
// `systemctl reload` would, and waits until a new worker answers.
func (h *HAProxy) Reload() {
	h.t.Helper()
	pid := func() string {
		for _, line := range strings.Split(h.Exec("show info"), "\n") {
			if v, ok := strings.CutPrefix(line, "Pid: "); ok {
				return strings.TrimSpace(v)
			}
		}
		return ""
	}
	before := pid()
	c, err := net.DialTimeout("unix", h.MasterSocket, 2*time.Second)
	if err != nil {
		h.t.Fatalf("master socket: %v", err)
	}
	_, err = c.Write([]byte("reload\n"))
	c.Close()
	if err != nil {
		h.t.Fatalf("master socket: %v", err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if answers(h.StatsSocket, "show info") && answers(h.MasterSocket, "show proc;quit") {
			if now := pid(); now != "" && now != before {
				return
			}
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("haproxy: no new worker 15s after a reload:\n%s", tail(h.Log(), 2000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Exec sends one command to the stats socket and returns the reply.
func (h *HAProxy) Exec(command string) string {
	h.t.Helper()
	c, err := net.DialTimeout("unix", h.StatsSocket, 2*time.Second)
	if err != nil {
		h.t.Fatalf("stats socket: %v", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(command + "\n")); err != nil {
		h.t.Fatalf("stats socket: %v", err)
	}
	var b strings.Builder
	buf := make([]byte, 8192)
	for {
		n, err := c.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

// Log returns HAProxy's output so far.
func (h *HAProxy) Log() string {
	out, _ := os.ReadFile(filepath.Join(h.Dir, "haproxy.log"))
	return string(out)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
