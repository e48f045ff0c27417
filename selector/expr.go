package selector

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/jmespath/go-jmespath"
)

// Expr is a compiled JMESPath selector with its source text.
type Expr struct {
	Src string
	jp  *jmespath.JMESPath
}

// exprCache compiles each distinct expression once per model: 1,000 clusters
// sharing the four default services compile four selectors, not 4,000.
type exprCache struct{ byText map[string]*Expr }

func (c *exprCache) compile(src, at string) (*Expr, error) {
	if e, ok := c.byText[src]; ok {
		return e, nil
	}
	jp, err := compileJMESPath(src)
	if err != nil {
		return nil, inputErrorf("%s: invalid JMESPath %s: %s", at, quoteExpr(src), clipMessage(err.Error()))
	}
	e := &Expr{Src: src, jp: jp}
	c.byText[src] = e
	return e, nil
}

// compileJMESPath guards against panics inside the JMESPath library on
// pathological input: bad input must be an error, never a crash.
func compileJMESPath(src string) (jp *jmespath.JMESPath, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("parser failure: %v", r)
		}
	}()
	return jmespath.Compile(pythonLiterals(src))
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
		input[i] = floatsForGoJMESPath(m)
		byHost[m["inventory_hostname"].(string)] = m
	}
	// Each expression gets its own copy: go-jmespath's sort and sort_by sort
	// their argument in place, which would reorder the members the backup
	// expression sees (Pigsty evaluates both over the same member list).
	selected, err := s.hosts(s.Selector, slices.Clone(input), byHost, "selector")
	if err != nil {
		return nil, err
	}
	var backups []string
	if s.Backup != nil {
		if backups, err = s.hosts(s.Backup, slices.Clone(input), byHost, "backup"); err != nil {
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
// as empty, as Pigsty's `|default([])` does.
func (s *Service) hosts(e *Expr, input []any, byHost map[string]Record, what string) (out []string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = inputErrorf("%s%s %s failed: %s", s.where(), what, quoteExpr(e.Src), clipMessage(fmt.Sprint(r)))
		}
	}()
	res, err := e.jp.Search(input)
	if err != nil {
		return nil, inputErrorf("%s%s %s failed: %s", s.where(), what, quoteExpr(e.Src), searchError(err))
	}
	if res == nil || res == false {
		return nil, nil
	}
	list, ok := res.([]any)
	if !ok {
		return nil, inputErrorf("%s%s %s returned %s, want a list of hosts", s.where(), what, quoteExpr(e.Src), describe(res))
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

// clipMessage shortens a parser's message, which may quote the whole
// expression again, to its first line.
func clipMessage(msg string) string {
	msg, _, _ = strings.Cut(msg, "\n")
	return clip(msg)
}

var quotedWords = regexp.MustCompile(`"([a-z]+)"`)

// searchError keeps go-jmespath's reason but never the data it dumps: its
// type errors print whole host records, which may hold passwords.
func searchError(err error) string {
	msg := err.Error()
	if strings.HasPrefix(msg, "Invalid type for:") {
		if i := strings.LastIndex(msg, ", expected:"); i >= 0 {
			if types := quotedWords.FindAllStringSubmatch(msg[i:], -1); len(types) > 0 {
				var names []string
				for _, t := range types {
					names = append(names, t[1])
				}
				return "a function got an argument of the wrong type (expected " + strings.Join(names, " or ") + ")"
			}
		}
		return "a function got an argument of the wrong type"
	}
	if len(msg) > 120 {
		msg = msg[:120] + "..."
	}
	return msg
}

func describeItem(v any) string {
	if _, ok := v.(map[string]any); ok {
		return "an object that is not a member of the cluster"
	}
	return "a list holding " + describe(v)
}

// pythonLiterals rewrites backtick literals the way Python's jmespath (which
// Pigsty runs through Ansible's json_query) reads them: a literal that is not
// valid JSON, like `primary`, is the string "primary". go-jmespath only
// accepts JSON, so such literals are quoted before compiling.
func pythonLiterals(src string) string {
	var b strings.Builder
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch c {
		case '\'', '"':
			j := skipQuoted(src, i, c)
			b.WriteString(src[i:j])
			i = j - 1
		case '`':
			j := skipQuoted(src, i, '`')
			if j > len(src) || src[j-1] != '`' || j-1 == i {
				b.WriteString(src[i:]) // unterminated: let the parser report it
				return b.String()
			}
			b.WriteString(literal(src[i+1 : j-1]))
			i = j - 1
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// skipQuoted returns the index just past the quote that closes the one at i.
func skipQuoted(src string, i int, q byte) int {
	for j := i + 1; j < len(src); j++ {
		switch src[j] {
		case '\\':
			j++
		case q:
			return j + 1
		}
	}
	return len(src)
}

func literal(body string) string {
	raw := strings.ReplaceAll(body, "\\`", "`")
	if json.Valid([]byte(raw)) {
		return "`" + body + "`"
	}
	quoted := `"` + strings.TrimLeft(raw, " \t\n\r") + `"`
	if !json.Valid([]byte(quoted)) {
		return "`" + body + "`"
	}
	return "`" + strings.ReplaceAll(quoted, "`", "\\`") + "`"
}

func floatsForGoJMESPath(v any) any {
	switch t := v.(type) {
	case int64:
		return float64(t)
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[k] = floatsForGoJMESPath(e)
		}
		return m
	case []any:
		l := make([]any, len(t))
		for i, e := range t {
			l[i] = floatsForGoJMESPath(e)
		}
		return l
	}
	return v
}
