//go:build integration

package integration

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// writeProbe writes one row per attempt through its own new connection,
// the way a client reconnecting after errors does, and records when writes
// succeed. Its write-unavailable window is what an application sees.
type writeProbe struct {
	dsn      string
	interval time.Duration
	timeout  time.Duration // of one attempt, connecting included

	mu       sync.Mutex
	attempts []attempt
	lastErr  string
}

type attempt struct {
	at   time.Time
	ok   bool
	took time.Duration
}

// The lab's pgbouncer pools in session mode; simple protocol keeps the
// probe independent of prepared-statement support.
const dsnOptions = "connect_timeout=1&sslmode=disable&default_query_exec_mode=simple_protocol"

func newProbe(dsn string) *writeProbe {
	return &writeProbe{dsn: dsn, interval: 20 * time.Millisecond, timeout: time.Second}
}

// patientDSN is dsn with a connect timeout above pgsvc's hold_max (5 s),
// the client a hold is for: it waits instead of giving up.
func patientDSN(dsn string) string {
	return strings.Replace(dsn, "connect_timeout=1&", "connect_timeout=7&", 1)
}

// newPatientProbe probes through patientDSN(dsn), each attempt bounded at
// 7 s, one after the other as the original measurement did (a crowd of
// concurrent new connections every 20 ms, each doing SCRAM in the lab's
// single-threaded pgbouncer, saturates the 2-core lab on its own).
func newPatientProbe(dsn string) *writeProbe {
	p := newProbe(patientDSN(dsn))
	p.timeout = 7 * time.Second
	return p
}

func (p *writeProbe) run(ctx context.Context) {
	for ctx.Err() == nil {
		p.once(ctx)
		select {
		case <-ctx.Done():
		case <-time.After(p.interval):
		}
	}
}

// once makes one attempt and records it.
func (p *writeProbe) once(ctx context.Context) {
	start := time.Now()
	err := p.write(ctx)
	if err != nil && ctx.Err() != nil {
		return // stopped mid-attempt: says nothing about the service
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.attempts = append(p.attempts, attempt{at: start, ok: err == nil, took: time.Since(start)})
	if err != nil {
		p.lastErr = err.Error()
	}
}

func (p *writeProbe) write(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.dsn)
	if err == nil {
		defer conn.Close(context.Background())
		_, err = conn.Exec(ctx, "INSERT INTO pgsvc_probe(at) VALUES (now())")
	}
	return err
}

func (p *writeProbe) lastError() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastErr
}

// window is the longest write outage after since: from the last success
// before a run of failures to the first success after it.
func (p *writeProbe) window(since time.Time) (time.Duration, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var longest time.Duration
	var lastOK time.Time
	failing, failures := false, 0
	for _, a := range p.attempts {
		if a.at.Before(since) {
			if a.ok {
				lastOK = a.at
			}
			continue
		}
		switch {
		case !a.ok:
			failing = true
			failures++
		case failing:
			if d := a.at.Sub(lastOK); !lastOK.IsZero() && d > longest {
				longest = d
			}
			failing = false
			lastOK = a.at
		default:
			lastOK = a.at
		}
	}
	return longest, failures
}

// longestWait is the longest time from a write attempt after since to a
// successful write: one attempt's own duration (a held connection waits),
// or, across failures, from the first failing attempt's start to the next
// success.
func (p *writeProbe) longestWait(since time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	var longest time.Duration
	var firstFailed time.Time
	for _, a := range p.attempts {
		if a.at.Before(since) {
			continue
		}
		if !a.ok {
			if firstFailed.IsZero() {
				firstFailed = a.at
			}
			continue
		}
		from := a.at
		if !firstFailed.IsZero() {
			from, firstFailed = firstFailed, time.Time{}
		}
		longest = max(longest, a.at.Add(a.took).Sub(from))
	}
	if !firstFailed.IsZero() {
		// Still failing at the end: waited at least until now.
		longest = max(longest, time.Since(firstFailed))
	}
	return longest
}

// succeededAfter reports whether a write succeeded after t.
func (p *writeProbe) succeededAfter(t time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.attempts) - 1; i >= 0 && p.attempts[i].at.After(t); i-- {
		if p.attempts[i].ok {
			return true
		}
	}
	return false
}
