package selector

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/pgsvc/pgsvc/selector/jmes"
)

// Expr is a compiled JMESPath selector with its source text. Selectors run
// on jmes, which evaluates them as Python's jmespath does (Pigsty runs
// them through Ansible's json_query).
type Expr struct {
	Src string
	jp  *jmes.Expr
}

// exprCache compiles each distinct expression once per model: 1,000 clusters
// sharing the four default services compile four selectors, not 4,000.
type exprCache struct{ byText map[string]*Expr }

func (c *exprCache) compile(src, at string) (*Expr, error) {
	if e, ok := c.byText[src]; ok {
		return e, nil
	}
	jp, err := jmes.Compile(src)
	if err != nil {
		return nil, inputErrorf("%s: invalid JMESPath %s: %s", at, quoteExpr(src), clipMessage(err.Error()))
	}
	e := &Expr{Src: src, jp: jp}
	c.byText[src] = e
	return e, nil
}

// Pick is one server chosen by a service: a cluster member and its backup flag.
type Pick struct {
	Record Record
	Backup bool
}

// Evaluate runs the service's selector and backup expressions over the
// cluster's member records, exactly as Pigsty's template does: selector
// members in selector order (backup when also in the backup result), then
// backup-only members in backup order. Identity is inventory_hostname.
func (s *Service) Evaluate(members []Record) ([]Pick, error) {
	input := make([]any, len(members))
	byHost := make(map[string]Record, len(members))
	for i, m := range members {
		input[i] = m
		byHost[m["inventory_hostname"].(string)] = m
	}
	selected, err := s.hosts(s.Selector, input, byHost, "selector")
	if err != nil {
		return nil, err
	}
	var backups []string
	if s.Backup != nil {
		if backups, err = s.hosts(s.Backup, input, byHost, "backup"); err != nil {
			return nil, err
		}
	}
	isBackup := make(map[string]bool, len(backups))
	for _, h := range backups {
		isBackup[h] = true
	}
	picks := make([]Pick, 0, len(selected)+len(backups))
	seen := make(map[string]bool, len(selected))
	for _, h := range selected {
		if seen[h] {
			continue
		}
		seen[h] = true
		picks = append(picks, Pick{Record: byHost[h], Backup: isBackup[h]})
	}
	for _, h := range backups {
		if !seen[h] {
			seen[h] = true
			picks = append(picks, Pick{Record: byHost[h], Backup: true})
		}
	}
	return picks, nil
}

// hosts evaluates e and returns the inventory_hostname of each member it
// selected. The result must be a list of member hosts; null or false count
// as empty, as Pigsty's `|default([])` does. What Python raises (a number
// compared with a string, a function given the wrong type) fails Pigsty's
// render, so it is an error here too, never an empty service.
func (s *Service) hosts(e *Expr, input []any, byHost map[string]Record, what string) (out []string, err error) {
	res, err := e.jp.Search(input)
	if err != nil {
		consequence := "Pigsty's render fails here too"
		if ee := (*jmes.EvalError)(nil); errors.As(err, &ee) && ee.Unmodelled {
			consequence = "Python would evaluate it; pgsvc does not model this"
		}
		return nil, inputErrorf("%s%s %s failed: %s (%s)", s.where(), what, quoteExpr(e.Src), clipMessage(err.Error()), consequence)
	}
	if res == nil || res == false {
		return nil, nil
	}
	list, ok := res.([]any)
	if !ok {
		return nil, inputErrorf("%s%s %s returned %s, want a list of hosts", s.where(), what, quoteExpr(e.Src), describeResult(res))
	}
	out = make([]string, 0, len(list))
	for _, item := range list {
		m, ok := item.(map[string]any)
		h, _ := m["inventory_hostname"].(string)
		if !ok || byHost[h] == nil {
			return nil, inputErrorf("%s%s %s returned %s, want a list of hosts", s.where(), what, quoteExpr(e.Src), describeItem(item))
		}
		out = append(out, h)
	}
	return out, nil
}

// where starts an evaluation error: "file:line: cluster c service s: ", the
// location left out for services not built from an inventory.
func (s *Service) where() string {
	loc := fmt.Sprintf("cluster %s service %s: ", s.Cluster, s.Name)
	if s.at != "" {
		return s.at + ": " + loc
	}
	return loc
}

// quoteExpr quotes src for an error, shortened (clip) with its length
// when long: enough to recognise it, never a 300 KB line.
func quoteExpr(src string) string {
	if len(src) <= maxQuoted {
		return strconv.Quote(src)
	}
	return fmt.Sprintf("%s (%d bytes)", strconv.Quote(clip(src)), len(src))
}

// clipMessage shortens a message to its first line.
func clipMessage(msg string) string {
	msg, _, _ = strings.Cut(msg, "\n")
	return clip(msg)
}

// describeResult names what a selector returned without its data (host
// records may hold passwords).
func describeResult(v any) string {
	switch v.(type) {
	case *jmes.Object, map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	}
	return describe(v)
}

func describeItem(v any) string {
	switch v.(type) {
	case map[string]any:
		return "an object that is not a member of the cluster"
	case *jmes.Object:
		return "an object that is not a member of the cluster"
	}
	return "a list holding " + describe(v)
}
