package dcs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"unicode/utf8"
)

// ParseOverride decodes an override value: a JSON object of scalar variables.
func ParseOverride(value []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.UseNumber()
	var vars map[string]any
	if err := dec.Decode(&vars); err != nil {
		return nil, fmt.Errorf("not a JSON object of variables: %s", jsonError(err))
	}
	if vars == nil {
		return nil, fmt.Errorf("not a JSON object of variables: null")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("not a JSON object of variables: data after the object")
	}
	for _, k := range sortedKeys(vars) {
		if n, ok := vars[k].(json.Number); ok {
			vars[k] = pythonNumber(n)
		}
		if err := CheckOverride(k, vars[k]); err != nil {
			return nil, err
		}
	}
	return vars, nil
}

// pythonNumber is a JSON number as the inventory's values hold numbers:
// int64 when written as an integer (Python's int), else float64.
func pythonNumber(n json.Number) any {
	if i, err := n.Int64(); err == nil {
		return i
	}
	f, _ := n.Float64()
	return f
}

// protectedVars are identity variables an override must not change: they
// decide which cluster and server an instance is.
var protectedVars = map[string]bool{"pg_cluster": true, "pg_seq": true, "inventory_hostname": true,
	"inventory_hostname_short": true, "group_names": true}

// portVars are variables that become server or check ports.
var portVars = map[string]bool{"pg_port": true, "pgbouncer_port": true, "patroni_port": true, "pg_exporter_port": true}

// CheckOverride validates one override variable.
func CheckOverride(key string, v any) error {
	if key == "" {
		return fmt.Errorf("empty variable name")
	}
	if !utf8.ValidString(key) {
		return fmt.Errorf("variable name %q is not valid UTF-8", key)
	}
	if protectedVars[key] {
		return fmt.Errorf("%s identifies the instance and cannot be overridden", key)
	}
	if n, ok := v.(int64); ok {
		v = float64(n) // checked as a number; stored as the integer it is
	}
	switch t := v.(type) {
	case bool, string, nil:
	case float64:
		if key == "pg_weight" && (t != float64(int(t)) || t < 0 || t > 256) {
			return fmt.Errorf("pg_weight %v is outside 0-256", t)
		}
		if math.IsNaN(t) || math.IsInf(t, 0) {
			return fmt.Errorf("%s: %v is not a finite number", key, t)
		}
		if portVars[key] && (t != float64(int(t)) || t < 1 || t > 65535) {
			return fmt.Errorf("%s %v is not a port number (1-65535)", key, t)
		}
	default:
		return fmt.Errorf("%s: value must be a string, number, boolean or null", key)
	}
	if key == "pg_role" {
		switch v {
		case "replica", "standby", "offline", "delayed":
		case "primary":
			return fmt.Errorf("pg_role primary follows Patroni's leader and cannot be overridden")
		default:
			return fmt.Errorf("pg_role %v is not one of replica, standby, offline, delayed", v)
		}
	}
	if _, isNum := v.(float64); portVars[key] && !isNum {
		return fmt.Errorf("%s %v is not a port number (1-65535)", key, v)
	}
	if s, ok := v.(string); ok && key == "pg_weight" {
		return fmt.Errorf("pg_weight %q is not a number", s)
	}
	if b, ok := v.(bool); ok && key == "pg_weight" {
		return fmt.Errorf("pg_weight %v is not a number", b)
	}
	return nil
}

// EncodeOverride is the value `pgsvc set` stores. A whole float keeps its
// ".0" so that it reads back a float, not an integer (Python keeps 100.0
// and 100 apart).
func EncodeOverride(vars map[string]any) ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range sortedKeys(vars) {
		if i > 0 {
			b.WriteByte(',')
		}
		key, err := json.Marshal(k)
		if err != nil {
			return nil, err
		}
		b.Write(key)
		b.WriteByte(':')
		if f, ok := vars[k].(float64); ok && !math.IsNaN(f) && !math.IsInf(f, 0) && f == math.Trunc(f) && math.Abs(f) < 1e15 {
			b.WriteString(strconv.FormatFloat(f, 'f', 1, 64))
			continue
		}
		val, err := json.Marshal(vars[k])
		if err != nil {
			return nil, err
		}
		b.Write(val)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func sortedKeys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
