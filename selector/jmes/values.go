package jmes

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"
)

// Object is a JSON object that keeps its keys in insertion order, as a
// Python dict does; setting a key again keeps its position.
type Object struct {
	keys []string
	vals map[string]any
}

// NewObject returns an empty Object.
func NewObject() *Object { return &Object{vals: map[string]any{}} }

// Set sets k to v.
func (o *Object) Set(k string, v any) {
	if _, ok := o.vals[k]; !ok {
		o.keys = append(o.keys, k)
	}
	o.vals[k] = v
}

// Get returns the value of k.
func (o *Object) Get(k string) (any, bool) {
	v, ok := o.vals[k]
	return v, ok
}

// Keys returns the keys in order.
func (o *Object) Keys() []string { return o.keys }

// Len is the number of keys.
func (o *Object) Len() int { return len(o.keys) }

// entries is an object's keys in order, for *Object and for Go maps (which
// have no order of their own: sorted, so results are deterministic).
func entries(v any) ([]string, func(string) any, bool) {
	switch t := v.(type) {
	case *Object:
		return t.keys, func(k string) any { return t.vals[k] }, true
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return keys, func(k string) any { return t[k] }, true
	}
	return nil, nil, false
}

// DecodeJSON decodes JSON as Python's json.loads does: objects in document
// order (a repeated key keeps its first position and last value), integers
// as int64 (beyond int64, float64), other numbers as float64.
func DecodeJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := decodeValue(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("data after the JSON value")
	}
	return v, nil
}

func decodeValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			o := NewObject()
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, _ := kt.(string)
				v, err := decodeValue(dec)
				if err != nil {
					return nil, err
				}
				o.Set(k, v)
			}
			_, err := dec.Token()
			return o, err
		case '[':
			list := []any{}
			for dec.More() {
				v, err := decodeValue(dec)
				if err != nil {
					return nil, err
				}
				list = append(list, v)
			}
			_, err := dec.Token()
			return list, err
		}
		return nil, fmt.Errorf("unexpected %v", t)
	case json.Number:
		return pythonNumber(t.String())
	}
	return tok, nil
}

func pythonNumber(s string) (any, error) {
	if !strings.ContainsAny(s, ".eE") {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n, nil
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !strings.Contains(err.Error(), "range") {
		return nil, err
	}
	return f, nil
}

func parseInt(s string) (int64, error) { return strconv.ParseInt(s, 10, 64) }

// MarshalPython renders v as Python's json.dumps(v, separators=(',', ':'))
// does: ASCII only (\uXXXX escapes), `&` and `<` as they are, integers as
// integers, floats as Python's repr (50.0, 1e+16), objects in order.
func MarshalPython(v any) (string, error) {
	var b strings.Builder
	if err := writePython(&b, v, 0); err != nil {
		return "", err
	}
	return b.String(), nil
}

// maxDepth bounds nesting in values and expressions: deeper is an error,
// never a stack overflow (Python stops at its recursion limit too).
const maxDepth = 1000

func writePython(b *strings.Builder, v any, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("value nested too deeply")
	}
	switch t := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(t))
	case int:
		b.WriteString(strconv.Itoa(t))
	case int64:
		b.WriteString(strconv.FormatInt(t, 10))
	case float64:
		b.WriteString(pythonFloat(t, true))
	case string:
		writePythonString(b, t)
	case []any:
		b.WriteByte('[')
		for i, e := range t {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writePython(b, e, depth+1); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case *expref:
		// Python prints an object address here (json.dumps(default=str)),
		// nothing a selector can rely on.
		return fmt.Errorf("an expression reference is not JSON")
	default:
		keys, get, ok := entries(v)
		if !ok {
			return fmt.Errorf("a %T is not JSON", v)
		}
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			writePythonString(b, k)
			b.WriteByte(':')
			if err := writePython(b, get(k), depth+1); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	}
	return nil
}

func writePythonString(b *strings.Builder, s string) {
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r < 0x20 || (r >= 0x7f && r <= 0xffff):
			fmt.Fprintf(b, `\u%04x`, r)
		case r > 0xffff:
			hi, lo := utf16.EncodeRune(r)
			fmt.Fprintf(b, `\u%04x\u%04x`, hi, lo)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
}

// pythonFloat is repr(f), or json.dumps's spelling of it when asJSON.
func pythonFloat(f float64, asJSON bool) string {
	switch {
	case math.IsNaN(f) && asJSON:
		return "NaN"
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 0):
		word := "inf"
		if asJSON {
			word = "Infinity"
		}
		if f < 0 {
			return "-" + word
		}
		return word
	}
	// Shortest digits that round-trip, placed as Python's repr places them:
	// positional for exponents from -4 to 15, else d.ddde±XX.
	digits := strconv.FormatFloat(f, 'e', -1, 64) // d.ddde±XX
	mant, expStr, _ := strings.Cut(digits, "e")
	exp, _ := strconv.Atoi(expStr)
	neg := strings.HasPrefix(mant, "-")
	mant = strings.TrimPrefix(mant, "-")
	ds := strings.Replace(mant, ".", "", 1)
	var out string
	if exp < -4 || exp >= 16 {
		out = ds[:1]
		if len(ds) > 1 {
			out += "." + ds[1:]
		}
		sign := "+"
		if exp < 0 {
			sign, exp = "-", -exp
		}
		out += fmt.Sprintf("e%s%02d", sign, exp)
	} else if exp < 0 {
		out = "0." + strings.Repeat("0", -exp-1) + ds
	} else if exp+1 >= len(ds) {
		out = ds + strings.Repeat("0", exp+1-len(ds)) + ".0"
	} else {
		out = ds[:exp+1] + "." + ds[exp+1:]
	}
	if neg {
		out = "-" + out
	}
	return out
}
