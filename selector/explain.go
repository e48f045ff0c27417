package selector

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Errors about numbers say what Ansible read, what Pigsty's template prints
// from it and what HAProxy makes of that. Pigsty prints values as Ansible
// holds them and HAProxy reads the leading digits of a word (atoi), so a
// number that is text to Ansible (`0o144`, `1e2`), or that YAML 1.1 reads
// as another number than its digits say (`4:40` is 280), changes what
// HAProxy serves, or makes it refuse the file.

// use is a place where Pigsty prints a number into HAProxy's configuration.
type use struct {
	want string             // what the value must be, for "is not …"
	read func(n int) string // what HAProxy does reading n there
}

var (
	weightUse = use{"a weight (0-256)", func(n int) string {
		if n >= 0 && n <= 256 {
			return fmt.Sprintf("HAProxy would read %d", n)
		}
		return "HAProxy would refuse it (weights are 0-256)"
	}}
	bindUse = use{"a port number (1-65535)", func(n int) string {
		if n >= 1 && n <= 65535 {
			return fmt.Sprintf("HAProxy would bind port %d", n)
		}
		return "HAProxy would refuse the bind (invalid port)"
	}}
	serverPortUse = use{"a port number", func(n int) string {
		switch {
		case n == 0:
			return "HAProxy would read port 0 (the port each client connected to)"
		case n >= 1 && n <= 65535:
			return fmt.Sprintf("HAProxy would send traffic to port %d", n)
		}
		return "HAProxy would refuse the server (invalid port)"
	}}
	checkPortUse = use{"a port number", func(n int) string { return fmt.Sprintf("HAProxy would check port %d", n) }}
	maxconnUse   = use{"a non-negative integer", func(n int) string { return fmt.Sprintf("HAProxy would read maxconn %d", n) }}
	statusUse    = use{"a non-negative integer", func(n int) string { return fmt.Sprintf("HAProxy would expect status %d", n) }}
)

// portUses are the host variables Pigsty prints as ports.
var portUses = map[string]use{"pg_port": serverPortUse, "pgbouncer_port": serverPortUse,
	"patroni_port": checkPortUse, "pg_exporter_port": checkPortUse}

// notTemplateInt explains why v, which TemplateInt refused, is not the
// integer HAProxy needs at key: text that starts with digits is printed as
// written and HAProxy reads those digits, silently another number.
func notTemplateInt(key string, v any, u use) string {
	s, ok := v.(string)
	if !ok {
		return fmt.Sprintf("%s %s is not %s", key, describe(v), u.want)
	}
	digits := len(s) - len(strings.TrimLeft(s, "0123456789"))
	if digits == 0 {
		return fmt.Sprintf("%s %q is not %s", key, s, u.want)
	}
	n, err := strconv.Atoi(s[:digits])
	if err != nil {
		n = math.MaxInt // more digits than any port or weight
	}
	msg := fmt.Sprintf("%s %q is text to Ansible, not %s (YAML 1.1 reads only plain decimal, 0x…, 0b…, 0… octal and 1:40 as integers): Pigsty would print it as written and %s",
		key, s, u.want, u.read(n))
	if f, err := strconv.ParseFloat(s, 64); err == nil && f == math.Trunc(f) && math.Abs(f) < 1e15 {
		msg += fmt.Sprintf("; write %d", int64(f))
	} else if n, err := strconv.ParseInt(s, 0, 64); err == nil {
		msg += fmt.Sprintf("; write %d", n)
	}
	return msg
}

// outOfRange says that key's integer n (v as Ansible holds it, spelled as
// written when YAML 1.1 read that text as another number) is not what u
// wants, e.g. "is outside 0-256"; a spelled value also says how Ansible
// read it and what Pigsty and HAProxy would do.
func outOfRange(key string, v any, n int, spelled, problem string, u use) string {
	if spelled == "" {
		return fmt.Sprintf("%s %s %s", key, describe(v), problem)
	}
	return fmt.Sprintf("%s %s is %s to Ansible (YAML 1.1 reads it as %s), %s: Pigsty would print %s and %s",
		key, spelled, describe(v), yaml11How(spelled), strings.TrimPrefix(problem, "is "), describe(v), u.read(n))
}

// yaml11How says how YAML 1.1 reads a number spelled s that is not plain
// decimal digits.
func yaml11How(s string) string {
	body := strings.ToLower(strings.TrimLeft(s, "+-"))
	switch {
	case strings.Contains(body, ":"):
		if parts := strings.Split(body, ":"); len(parts) == 2 {
			return fmt.Sprintf("base 60: %s×60+%s", parts[0], parts[1])
		}
		return "base 60 (sexagesimal)"
	case strings.HasPrefix(body, "0x"):
		return "hexadecimal"
	case strings.HasPrefix(body, "0b"):
		return "binary"
	case strings.ContainsAny(body, ".e"):
		return "a float"
	case len(body) > 1 && body[0] == '0':
		return "octal"
	case strings.Contains(body, "_"):
		return "the digits without the underscores"
	}
	return "a number"
}
