// Package jmes evaluates JMESPath expressions exactly as Python's jmespath
// 1.0.1 does, which is what Ansible's json_query, and so Pigsty's service
// templates, run. go-jmespath differs where that decides what HAProxy
// serves: it has no ordering of strings, compares a number with a string
// without error, orders object keys by Go's random map order, and prints
// JSON differently in to_string. Objects here keep insertion order, as
// Python dicts do, and integers stay apart from floats.
package jmes

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

type tokenType int

const (
	tEOF tokenType = iota
	tUnquoted
	tQuoted
	tLiteral
	tNumber
	tDot
	tStar
	tFlatten
	tFilter
	tLbracket
	tRbracket
	tLbrace
	tRbrace
	tLparen
	tRparen
	tComma
	tColon
	tAt
	tPipe
	tOr
	tAnd
	tNot
	tExpref
	tEQ
	tNE
	tLT
	tLTE
	tGT
	tGTE
)

var tokenNames = [...]string{"eof", "unquoted_identifier", "quoted_identifier", "literal", "number", "dot",
	"star", "flatten", "filter", "lbracket", "rbracket", "lbrace", "rbrace", "lparen", "rparen", "comma",
	"colon", "current", "pipe", "or", "and", "not", "expref", "eq", "ne", "lt", "lte", "gt", "gte"}

func (t tokenType) String() string { return tokenNames[t] }

type token struct {
	typ   tokenType
	text  string // identifier or raw-string value
	value any    // literal and number values
	pos   int
}

// SyntaxError is a lexer or parser error, with the offset it names.
type SyntaxError struct {
	Msg string
	Pos int
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("%s at offset %d", e.Msg, e.Pos) }

func simpleToken(c byte) (tokenType, bool) {
	switch c {
	case '.':
		return tDot, true
	case '*':
		return tStar, true
	case ']':
		return tRbracket, true
	case ',':
		return tComma, true
	case ':':
		return tColon, true
	case '@':
		return tAt, true
	case '(':
		return tLparen, true
	case ')':
		return tRparen, true
	case '{':
		return tLbrace, true
	case '}':
		return tRbrace, true
	}
	return 0, false
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdentChar(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }

func lex(src string) ([]token, error) {
	var out []token
	for i := 0; i < len(src); {
		c := src[i]
		start := i
		simple, isSimple := simpleToken(c)
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
			continue
		case isSimple:
			out = append(out, token{typ: simple, pos: start})
			i++
		case isIdentStart(c):
			for i < len(src) && isIdentChar(src[i]) {
				i++
			}
			out = append(out, token{typ: tUnquoted, text: src[start:i], pos: start})
		case c == '[':
			switch {
			case strings.HasPrefix(src[i:], "[?"):
				out = append(out, token{typ: tFilter, pos: start})
				i += 2
			case strings.HasPrefix(src[i:], "[]"):
				out = append(out, token{typ: tFlatten, pos: start})
				i += 2
			default:
				out = append(out, token{typ: tLbracket, pos: start})
				i++
			}
		case c == '\'':
			body, next, err := consumeUntil(src, i, '\'')
			if err != nil {
				return nil, err
			}
			out = append(out, token{typ: tLiteral, value: strings.ReplaceAll(body, `\'`, `'`), pos: start})
			i = next
		case c == '|' || c == '&':
			double, single := tOr, tPipe
			if c == '&' {
				double, single = tAnd, tExpref
			}
			if i+1 < len(src) && src[i+1] == c {
				out = append(out, token{typ: double, pos: start})
				i += 2
			} else {
				out = append(out, token{typ: single, pos: start})
				i++
			}
		case c == '`':
			body, next, err := consumeUntil(src, i, '`')
			if err != nil {
				return nil, err
			}
			v, err := literalValue(strings.ReplaceAll(body, "\\`", "`"), start)
			if err != nil {
				return nil, err
			}
			out = append(out, token{typ: tLiteral, value: v, pos: start})
			i = next
		case c == '-' || (c >= '0' && c <= '9'):
			i++
			for i < len(src) && src[i] >= '0' && src[i] <= '9' {
				i++
			}
			if src[start:i] == "-" {
				return nil, &SyntaxError{Msg: "unknown token '-'", Pos: start}
			}
			n, err := parseInt(src[start:i])
			if err != nil {
				return nil, &SyntaxError{Msg: "number out of range", Pos: start}
			}
			out = append(out, token{typ: tNumber, value: n, pos: start})
		case c == '"':
			body, next, err := consumeUntil(src, i, '"')
			if err != nil {
				return nil, err
			}
			v, err := DecodeJSON([]byte(`"` + body + `"`))
			s, ok := v.(string)
			if err != nil || !ok {
				return nil, &SyntaxError{Msg: "invalid quoted identifier", Pos: start}
			}
			out = append(out, token{typ: tQuoted, text: s, pos: start})
			i = next
		case c == '<' || c == '>' || c == '=' || c == '!':
			eq := i+1 < len(src) && src[i+1] == '='
			var typ tokenType
			switch c {
			case '<':
				typ = pick(eq, tLTE, tLT)
			case '>':
				typ = pick(eq, tGTE, tGT)
			case '!':
				typ = pick(eq, tNE, tNot)
			case '=':
				if !eq {
					return nil, &SyntaxError{Msg: "unknown token '=', did you mean '=='", Pos: start}
				}
				typ = tEQ
			}
			out = append(out, token{typ: typ, pos: start})
			i++
			if eq {
				i++
			}
		default:
			r, _ := utf8.DecodeRuneInString(src[i:])
			return nil, &SyntaxError{Msg: fmt.Sprintf("unknown token %q", r), Pos: start}
		}
	}
	return append(out, token{typ: tEOF, pos: len(src)}), nil
}

// consumeUntil returns what lies between the delimiter at i and the next
// unescaped one, and the offset just past it.
func consumeUntil(src string, i int, delim byte) (string, int, error) {
	for j := i + 1; j < len(src); j++ {
		switch src[j] {
		case '\\':
			j++
		case delim:
			return src[i+1 : j], j + 1, nil
		}
	}
	return "", 0, &SyntaxError{Msg: fmt.Sprintf("unclosed %c delimiter", delim), Pos: i}
}

// literalValue is a backtick literal: JSON, or (Python jmespath's legacy
// reading, which Pigsty's `primary`-style literals rely on) the text with
// leading whitespace removed, read as a JSON string.
func literalValue(body string, pos int) (any, error) {
	if v, err := DecodeJSON([]byte(body)); err == nil {
		return v, nil
	}
	if v, err := DecodeJSON([]byte(`"` + strings.TrimLeft(body, " \t\n\r\f\v") + `"`)); err == nil {
		return v, nil
	}
	return nil, &SyntaxError{Msg: "bad token in literal", Pos: pos}
}

func pick(cond bool, yes, no tokenType) tokenType {
	if cond {
		return yes
	}
	return no
}
