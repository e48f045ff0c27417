package selector

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// PyYAML's implicit resolvers (YAML 1.1), which Ansible's loader uses: a
// plain scalar is a bool, float, int or null when it matches one of these,
// tried in this order, and a string otherwise. They differ from yaml.v3's
// YAML 1.2 in both directions: `08`, `0o144` and `1e2` are strings, `010`
// is 8, `1:40` is 100, `1_000` is 1000, `.5` is 0.5.
var (
	yaml11Bool = map[string]bool{
		"yes": true, "Yes": true, "YES": true, "true": true, "True": true, "TRUE": true, "on": true, "On": true, "ON": true,
		"no": false, "No": false, "NO": false, "false": false, "False": false, "FALSE": false, "off": false, "Off": false, "OFF": false,
	}
	yaml11Float = regexp.MustCompile(`^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?` +
		`|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?` +
		`|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*` +
		`|[-+]?\.(?:inf|Inf|INF)` +
		`|\.(?:nan|NaN|NAN))$`)
	yaml11Int = regexp.MustCompile(`^(?:[-+]?0b[0-1_]+` +
		`|[-+]?0[0-7_]+` +
		`|[-+]?(?:0|[1-9][0-9_]*)` +
		`|[-+]?0x[0-9a-fA-F_]+` +
		`|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$`)
	yaml11Null = map[string]bool{"": true, "~": true, "null": true, "Null": true, "NULL": true}
)

// yaml11Plain is the tag and canonical value (as yaml.v3 decodes it) of a
// plain scalar as PyYAML reads it. Timestamps stay strings: yaml.v3 gives
// strings for them too, and a date is nothing a service reads.
func yaml11Plain(v string) (tag, value string, err error) {
	if b, ok := yaml11Bool[v]; ok {
		return "!!bool", strconv.FormatBool(b), nil
	}
	if yaml11Null[v] {
		return "!!null", "null", nil
	}
	if yaml11Float.MatchString(v) {
		f, err := yaml11FloatValue(v)
		if err != nil {
			return "", "", err
		}
		switch {
		case math.IsInf(f, 1):
			return "!!float", ".inf", nil
		case math.IsInf(f, -1):
			return "!!float", "-.inf", nil
		case math.IsNaN(f):
			return "!!float", ".nan", nil
		}
		return "!!float", strconv.FormatFloat(f, 'g', -1, 64), nil
	}
	if yaml11Int.MatchString(v) {
		n, ok := yaml11IntValue(v)
		if !ok {
			// Python's int has no bound; a float keeps the magnitude.
			f, _ := strconv.ParseFloat(strings.ReplaceAll(v, "_", ""), 64)
			if f == 0 {
				return "", "", fmt.Errorf("%q is an integer pgsvc cannot represent", v)
			}
			return "!!float", strconv.FormatFloat(f, 'g', -1, 64), nil
		}
		return "!!int", strconv.FormatInt(n, 10), nil
	}
	return "!!str", v, nil
}

// yaml11IntValue is PyYAML's construct_yaml_int.
func yaml11IntValue(v string) (int64, bool) {
	v = strings.ReplaceAll(v, "_", "")
	sign := int64(1)
	if v != "" && v[0] == '-' {
		sign = -1
	}
	if v != "" && (v[0] == '-' || v[0] == '+') {
		v = v[1:]
	}
	var n int64
	var err error
	switch {
	case v == "":
		return 0, false
	case v == "0":
		return 0, true
	case strings.HasPrefix(v, "0b"):
		n, err = strconv.ParseInt(v[2:], 2, 64)
	case strings.HasPrefix(v, "0x"):
		n, err = strconv.ParseInt(v[2:], 16, 64)
	case v[0] == '0':
		n, err = strconv.ParseInt(v, 8, 64)
	case strings.Contains(v, ":"):
		for _, part := range strings.Split(v, ":") {
			d, perr := strconv.ParseInt(part, 10, 64)
			if perr != nil || n > (math.MaxInt64-d)/60 {
				return 0, false
			}
			n = n*60 + d
		}
	default:
		n, err = strconv.ParseInt(v, 10, 64)
	}
	return sign * n, err == nil
}

// yaml11FloatValue is PyYAML's construct_yaml_float.
func yaml11FloatValue(v string) (float64, error) {
	v = strings.ToLower(strings.ReplaceAll(v, "_", ""))
	sign := 1.0
	if v != "" && v[0] == '-' {
		sign = -1
	}
	if v != "" && (v[0] == '-' || v[0] == '+') {
		v = v[1:]
	}
	switch {
	case v == ".inf":
		return sign * math.Inf(1), nil
	case v == ".nan":
		return math.NaN(), nil
	case strings.Contains(v, ":"):
		f := 0.0
		for _, part := range strings.Split(v, ":") {
			d, err := strconv.ParseFloat(part, 64)
			if err != nil {
				return 0, fmt.Errorf("%q is not a number PyYAML can read", v)
			}
			f = f*60 + d
		}
		return sign * f, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil && !strings.Contains(err.Error(), "range") {
		return 0, fmt.Errorf("%q is not a number PyYAML can read", v)
	}
	return sign * f, nil
}
