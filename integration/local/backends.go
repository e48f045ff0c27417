package local

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
)

// Member stands in for one PostgreSQL instance behind HAProxy: a TCP
// service that echoes (the pgbouncer/postgres port) and an HTTP health
// endpoint answering OPTIONS like Patroni's REST API does for its role:
// /primary 200 only on the leader, /read-only on any running member,
// /replica on replicas. It is a stand-in only for the endpoints HAProxy
// checks; Patroni's own behaviour comes from recorded etcd writes.
type Member struct {
	Addr      string
	Port      int
	CheckPort int

	mu      sync.Mutex
	primary bool
	lock    bool // holds the leader lock (see SetLeaderLock)
	asked   int  // GET requests for a status body (pgsvc's promotion probe)
	conns   map[net.Conn]bool
	ln      net.Listener
	srv     *http.Server
}

// StartMember listens on ip at free ports.
func StartMember(t testing.TB, ip string, primary bool) *Member {
	t.Helper()
	m := &Member{Addr: ip, primary: primary, conns: map[net.Conn]bool{}}
	var err error
	if m.ln, err = net.Listen("tcp", net.JoinHostPort(ip, "0")); err != nil {
		t.Fatalf("member %s: %v", ip, err)
	}
	m.Port = m.ln.Addr().(*net.TCPAddr).Port
	go m.serveTCP()
	hl, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatalf("member %s health: %v", ip, err)
	}
	m.CheckPort = hl.Addr().(*net.TCPAddr).Port
	m.srv = &http.Server{Handler: http.HandlerFunc(m.health)}
	go func() { _ = m.srv.Serve(hl) }()
	t.Cleanup(m.Close)
	return m
}

// SetPrimary changes the role the health endpoint reports.
func (m *Member) SetPrimary(p bool) {
	m.mu.Lock()
	m.primary = p
	m.mu.Unlock()
}

// SetLeaderLock makes the member hold the leader lock without being
// promoted yet: Patroni then answers /primary with 200 while its status
// body still says role replica (pg_is_in_recovery()), as Patroni 4.0.7
// does between taking the leader key and the end of promotion.
func (m *Member) SetLeaderLock(l bool) {
	m.mu.Lock()
	m.lock = l
	m.mu.Unlock()
}

// Asked counts the GET requests for a status body (HAProxy's checks send
// OPTIONS).
func (m *Member) Asked() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.asked
}

func (m *Member) health(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	primary, lock := m.primary, m.lock
	if r.Method == http.MethodGet {
		m.asked++
	}
	m.mu.Unlock()
	ok := false
	switch r.URL.Path {
	case "/", "/primary", "/master", "/read-write":
		ok = primary || lock
	case "/replica":
		ok = !primary && !lock
	case "/read-only", "/health":
		ok = true
	}
	code := http.StatusServiceUnavailable
	if ok {
		code = http.StatusOK
	}
	role := map[bool]string{true: "primary", false: "replica"}[primary]
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	if r.Method != http.MethodOptions {
		_, _ = io.WriteString(w, `{"state": "running", "role": "`+role+`"}`)
	}
}

func (m *Member) serveTCP() {
	for {
		c, err := m.ln.Accept()
		if err != nil {
			return
		}
		m.mu.Lock()
		m.conns[c] = true
		m.mu.Unlock()
		go func() {
			_, _ = io.Copy(c, c)
			m.mu.Lock()
			delete(m.conns, c)
			m.mu.Unlock()
			c.Close()
		}()
	}
}

// Sessions is the number of open client sessions.
func (m *Member) Sessions() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.conns)
}

// Close stops both listeners and drops sessions.
func (m *Member) Close() {
	_ = m.ln.Close()
	_ = m.srv.Close()
	m.mu.Lock()
	for c := range m.conns {
		c.Close()
	}
	m.mu.Unlock()
}

// HostPort is the member's service address.
func (m *Member) HostPort() string { return net.JoinHostPort(m.Addr, strconv.Itoa(m.Port)) }
