package reconcile

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// PromotionProbe asks a member's Patroni REST API (its key's api_url)
// whether its PostgreSQL has left recovery: the status body of GET
// /primary says role primary (master before Patroni 4) from a live
// pg_is_in_recovery(), the moment promotion ends, while the member key
// says so 1.3–1.4 s later (Patroni 4.0.7 in the lab). The status code
// alone is not enough: Patroni answers /primary with 200 as soon as the
// member holds the leader lock, before promotion ends (read-only writes
// through the lab's 5433 after a release on it). Only role primary with
// 200 is a fact; any other answer or error says nothing.
type PromotionProbe func(ctx context.Context, apiURL string) (bool, error)

// HTTPPromotionProbe is a PromotionProbe over client.
func HTTPPromotionProbe(client *http.Client) PromotionProbe {
	return func(ctx context.Context, apiURL string) (bool, error) {
		u, err := primaryURL(apiURL)
		if err != nil {
			return false, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return false, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		var status struct {
			Role string `json:"role"`
		}
		if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&status); err != nil {
			return false, fmt.Errorf("%s: status body: %w", u, err)
		}
		return resp.StatusCode == http.StatusOK && (status.Role == "primary" || status.Role == "master"), nil
	}
}

// primaryURL is the /primary endpoint beside a member's api_url
// (http://10.10.10.12:8008/patroni → http://10.10.10.12:8008/primary).
func primaryURL(apiURL string) (string, error) {
	u, err := url.Parse(apiURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("member api_url %q is not an http(s) URL", apiURL)
	}
	u.Path, u.RawQuery, u.Fragment = "/primary", "", ""
	return u.String(), nil
}

// promotionEvery is how often a held cluster's new leader is asked.
const promotionEvery = 25 * time.Millisecond

// promotions asks, while a cluster holds and its leader key names a new
// leader, that leader's REST API every promotionEvery until it answers
// 200, and then marks the cluster for a pass. The answer counts for the
// leader term it was asked for only (a new term asks again).
type promotions struct {
	ctx    context.Context // the probes' lifetime: Run's
	probe  PromotionProbe
	notify func(cluster string)
	log    func(cluster, url string, err error) // the first failure of each term's probe
	wg     sync.WaitGroup

	mu       sync.Mutex
	running  map[string]*promotionTarget // cluster → the probe running
	answered map[string]string           // cluster → the term whose leader answered 200
}

// promotionTarget is one leader term's leader to ask.
type promotionTarget struct {
	term, url string
	stop      context.CancelFunc
}

func newPromotions(ctx context.Context, probe PromotionProbe, notify func(string), log func(cluster, url string, err error)) *promotions {
	return &promotions{ctx: ctx, probe: probe, notify: notify, log: log, running: map[string]*promotionTarget{}, answered: map[string]string{}}
}

// want makes the cluster's probe ask term's leader at url ("" term: ask
// nothing, forget the cluster). A nil p asks nothing.
func (p *promotions) want(cluster, term, url string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	cur := p.running[cluster]
	if cur != nil && cur.term == term && cur.url == url {
		return
	}
	if cur != nil {
		cur.stop()
		delete(p.running, cluster)
	}
	if p.answered[cluster] != term {
		delete(p.answered, cluster)
	}
	if term == "" || url == "" || p.answered[cluster] == term {
		return
	}
	pctx, stop := context.WithCancel(p.ctx)
	target := &promotionTarget{term: term, url: url, stop: stop}
	p.running[cluster] = target
	p.wg.Add(1)
	go p.ask(pctx, cluster, target)
}

func (p *promotions) ask(ctx context.Context, cluster string, target *promotionTarget) {
	defer p.wg.Done()
	defer target.stop()
	t := time.NewTicker(promotionEvery)
	defer t.Stop()
	logged := false
	for {
		actx, cancel := context.WithTimeout(ctx, time.Second)
		ok, err := p.probe(actx, target.url) // an error says nothing: ask again
		cancel()
		if err != nil && !logged && ctx.Err() == nil && p.log != nil {
			p.log(cluster, target.url, err)
			logged = true
		}
		if ok {
			p.mu.Lock()
			mine := p.running[cluster] == target
			if mine {
				p.answered[cluster] = target.term
				delete(p.running, cluster)
			}
			p.mu.Unlock()
			if mine {
				p.notify(cluster)
			}
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// answeredFor reports whether term's leader answered /primary 200.
func (p *promotions) answeredFor(cluster, term string) bool {
	if p == nil || term == "" {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.answered[cluster] == term
}

// stopAll ends every probe and waits for them.
func (p *promotions) stopAll() {
	if p == nil {
		return
	}
	p.mu.Lock()
	for c, cur := range p.running {
		cur.stop()
		delete(p.running, c)
	}
	p.mu.Unlock()
	p.wg.Wait()
}
