package dcs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"unicode/utf8"
)

// ParseOverride decodes an override value: a JSON object of scalar variables.
func ParseOverride(value []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(value))
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
		if err := CheckOverride(k, vars[k]); err != nil {
			return nil, err
		}
	}
	return vars, nil
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

// EncodeOverride is the value `pgsvc set` stores.
func EncodeOverride(vars map[string]any) ([]byte, error) {
	return json.Marshal(vars)
}

func sortedKeys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
