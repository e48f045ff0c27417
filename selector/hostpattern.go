package selector

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Host keys as Ansible's yaml inventory plugin reads them
// (_expand_hostpattern): an optional port (`10.0.0.1:2222`, `[::1]:2222`)
// that becomes ansible_port, and [begin:end(:step)] ranges that expand into
// several hosts (`db-[01:03]`). A key that does not parse as a host with a
// port is taken whole as the name, ranges still expanded.

const (
	numericRange = `\[[0-9]+:[0-9]+(?::[0-9]+)?\]`
	hexRange     = `\[[0-9a-fA-F]+:[0-9a-fA-F]+(?::[0-9]+)?\]`
	alnumRange   = `\[(?:[a-zA-Z]:[a-zA-Z]|[0-9]+:[0-9]+)(?::[0-9]+)?\]`
	ipv4Part     = `(?:[01]?[0-9]{1,2}|2[0-4][0-9]|25[0-5]|` + numericRange + `)`
	ipv6Part     = `(?:[0-9a-fA-F]{1,4}|` + hexRange + `)`
	labelPart    = `(?:[\p{L}\p{N}_]|` + alnumRange + `)(?:[\p{L}\p{N}_-]|` + alnumRange + `)*`
)

var (
	bracketedHostPort = regexp.MustCompile(`^\[(.+)\]:([0-9]+)$`)
	hostPort          = regexp.MustCompile(`^((?:[^:\[\]]|\[[^\]]*\])*):([0-9]+)$`)
	ipv4Pattern       = regexp.MustCompile(`^(?:` + ipv4Part + `\.){3}` + ipv4Part + `$`)
	// Ansible's pattern anchors only its first and last alternatives, and
	// re.match only the start: every alternative is a prefix match but the
	// last. Kept as is, since it decides which keys get a port.
	ipv6Pattern = regexp.MustCompile(strings.ReplaceAll(`^(?:`+strings.Join([]string{
		`(?:P:){7}P`, `(?:P:){1,6}:`, `(?:P:)(?::P){1,6}`, `(?:P:){2}(?::P){1,5}`, `(?:P:){3}(?::P){1,4}`,
		`(?:P:){4}(?::P){1,3}`, `(?:P:){5}(?::P){1,2}`, `(?:P:){6}(?::P)`, `:(?::P){1,6}`, `P?::`,
		`(?:0:){6}(?:P\.){3}P`, `::(?:ffff:)?(?:P\.){3}P`, `(?:0:){5}ffff:(?:P\.){3}P$`,
	}, "|")+`)`, "P", ipv6Part)) // P: one component
	hostnamePattern = regexp.MustCompile(`^` + labelPart + `(?:\.` + labelPart + `)*$`)
)

// expandHostPattern is the hosts and the port (0: none) a host key names.
func expandHostPattern(key string) ([]string, int, error) {
	pattern, port := parseAddress(key)
	if !strings.Contains(pattern, "[") {
		return []string{pattern}, port, nil
	}
	names, err := expandRanges(pattern, 0)
	return names, port, err
}

// parseAddress is Ansible's parse_address with ranges allowed: the host and
// port, or the key itself and 0 when it is not a valid address.
func parseAddress(key string) (string, int) {
	addr, port := key, 0
	for _, re := range []*regexp.Regexp{bracketedHostPort, hostPort} {
		if m := re.FindStringSubmatch(addr); m != nil {
			p, err := strconv.Atoi(m[2])
			if err != nil {
				return key, 0
			}
			addr, port = m[1], p
		}
	}
	if ipv4Pattern.MatchString(addr) || ipv6Pattern.MatchString(addr) || validHostname(addr) {
		return addr, port
	}
	return key, 0
}

func validHostname(s string) bool {
	if !hostnamePattern.MatchString(s) {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if strings.HasSuffix(label, "_") || strings.HasSuffix(label, "-") {
			return false
		}
	}
	return true
}

const asciiLetters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

// maxExpandedHosts bounds what ranges may expand to: `h[0:99999999]` must
// be an error, not all of memory.
const maxExpandedHosts = 100_000

// expandRanges is Ansible's expand_hostname_range: the first [..] is
// expanded, then each result again, until none is left.
func expandRanges(line string, budget int) ([]string, error) {
	open := strings.Index(line, "[")
	rest := line[:open] + "|" + line[open+1:]
	closing := strings.Index(rest, "]")
	if closing < 0 {
		return nil, fmt.Errorf("range has no closing ]")
	}
	rest = rest[:closing] + "|" + rest[closing+1:]
	parts := strings.Split(rest, "|")
	if len(parts) != 3 {
		return nil, fmt.Errorf("more than one [ before the first ]")
	}
	head, nrange, tail := parts[0], parts[1], parts[2]
	bounds := strings.Split(nrange, ":")
	if len(bounds) != 2 && len(bounds) != 3 {
		return nil, fmt.Errorf("host range must be begin:end or begin:end:step")
	}
	beg, end, step := bounds[0], bounds[1], "1"
	if len(bounds) == 3 {
		step = bounds[2]
	}
	if beg == "" {
		beg = "0"
	}
	if end == "" {
		return nil, fmt.Errorf("host range must specify end value")
	}
	width := 0
	if beg[0] == '0' && len(beg) > 1 {
		if len(beg) != len(end) {
			return nil, fmt.Errorf("host range must specify equal-length begin and end formats")
		}
		width = len(beg)
	}
	st, err := pythonInt(step)
	if err != nil || st == 0 {
		return nil, fmt.Errorf("host range step %q is not a non-zero integer", step)
	}
	var seq []string
	ib, ie := strings.Index(asciiLetters, beg), strings.Index(asciiLetters, end)
	if ib >= 0 && ie >= 0 && st > 0 {
		if ib > ie {
			return nil, fmt.Errorf("host range must have begin <= end")
		}
		for i := ib; i <= ie; i += st {
			seq = append(seq, string(asciiLetters[i]))
		}
	} else {
		b, err1 := pythonInt(beg)
		e, err2 := pythonInt(end)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("host range [%s] is neither numeric nor one letter to another", nrange)
		}
		for i := b; (st > 0 && i <= e) || (st < 0 && i > e+1); i += st {
			if len(seq)+budget >= maxExpandedHosts {
				return nil, fmt.Errorf("host ranges expand to more than %d hosts", maxExpandedHosts)
			}
			s := strconv.Itoa(i)
			if len(s) < width {
				s = strings.Repeat("0", width-len(s)) + s
			}
			seq = append(seq, s)
		}
	}
	var out []string
	for _, s := range seq {
		name := head + s + tail
		if !strings.Contains(name, "[") {
			out = append(out, name)
		} else {
			more, err := expandRanges(name, budget+len(out))
			if err != nil {
				return nil, err
			}
			out = append(out, more...)
		}
		if budget+len(out) > maxExpandedHosts {
			return nil, fmt.Errorf("host ranges expand to more than %d hosts", maxExpandedHosts)
		}
	}
	return out, nil
}

// pythonInt is int(s) for the decimal strings a host range holds.
func pythonInt(s string) (int, error) {
	return strconv.Atoi(strings.ReplaceAll(strings.TrimSpace(s), "_", ""))
}
