package jmes

import "fmt"

// nodeKind names an AST node as Python jmespath's parser does.
type nodeKind int

const (
	nField nodeKind = iota
	nSubexpression
	nIndexExpression
	nIndex
	nSlice
	nProjection
	nValueProjection
	nFilterProjection
	nFlatten
	nIdentity
	nCurrent
	nLiteral
	nMultiSelectList
	nMultiSelectDict
	nKeyValPair
	nComparator
	nOr
	nAnd
	nNot
	nPipe
	nFunction
	nExpref
)

type node struct {
	kind     nodeKind
	name     string // field, key, function name, comparator
	value    any    // literal; index
	slice    [3]*int64
	children []*node
}

// bindingPower is Python jmespath's; everything below projectionStop
// ends a projection.
func bindingPower(t tokenType) int {
	switch t {
	case tPipe:
		return 1
	case tOr:
		return 2
	case tAnd:
		return 3
	case tEQ, tNE, tLT, tLTE, tGT, tGTE:
		return 5
	case tFlatten:
		return 9
	case tStar:
		return 20
	case tFilter:
		return 21
	case tDot:
		return 40
	case tNot:
		return 45
	case tLbrace:
		return 50
	case tLbracket:
		return 55
	case tLparen:
		return 60
	}
	return 0
}

const projectionStop = 10

type parser struct {
	tokens []token
	i      int
	depth  int
}

func parse(src string) (*node, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{tokens: toks}
	n, err := p.expression(0)
	if err != nil {
		return nil, err
	}
	if p.cur().typ != tEOF {
		return nil, p.errorf("unexpected token: %s", p.cur().typ)
	}
	return n, nil
}

func (p *parser) cur() token       { return p.tokens[p.i] }
func (p *parser) peek(k int) token { return p.tokens[min(p.i+k, len(p.tokens)-1)] }
func (p *parser) advance()         { p.i = min(p.i+1, len(p.tokens)-1) }
func (p *parser) errorf(f string, a ...any) error {
	return &SyntaxError{Msg: fmt.Sprintf(f, a...), Pos: p.cur().pos}
}

func (p *parser) match(t tokenType) error {
	if p.cur().typ != t {
		return p.errorf("expected %s, got %s", t, p.cur().typ)
	}
	p.advance()
	return nil
}

func (p *parser) expression(bp int) (*node, error) {
	if p.depth++; p.depth > maxDepth {
		return nil, p.errorf("expression nested too deeply")
	}
	defer func() { p.depth-- }()
	tok := p.cur()
	p.advance()
	left, err := p.nud(tok)
	if err != nil {
		return nil, err
	}
	for bp < bindingPower(p.cur().typ) {
		t := p.cur()
		p.advance()
		if left, err = p.led(t, left); err != nil {
			return nil, err
		}
	}
	return left, nil
}

func (p *parser) nud(tok token) (*node, error) {
	identity := &node{kind: nIdentity}
	switch tok.typ {
	case tLiteral:
		return &node{kind: nLiteral, value: tok.value}, nil
	case tUnquoted:
		return &node{kind: nField, name: tok.text}, nil
	case tQuoted:
		if p.cur().typ == tLparen {
			return nil, p.errorf("quoted identifier not allowed for function names")
		}
		return &node{kind: nField, name: tok.text}, nil
	case tStar:
		right := identity
		if p.cur().typ != tRbracket {
			var err error
			if right, err = p.projectionRHS(bindingPower(tStar)); err != nil {
				return nil, err
			}
		}
		return &node{kind: nValueProjection, children: []*node{identity, right}}, nil
	case tFilter:
		return p.led(tok, identity)
	case tLbrace:
		return p.multiSelectHash()
	case tLparen:
		n, err := p.expression(0)
		if err != nil {
			return nil, err
		}
		return n, p.match(tRparen)
	case tFlatten:
		right, err := p.projectionRHS(bindingPower(tFlatten))
		if err != nil {
			return nil, err
		}
		return &node{kind: nProjection, children: []*node{{kind: nFlatten, children: []*node{identity}}, right}}, nil
	case tNot:
		n, err := p.expression(bindingPower(tNot))
		if err != nil {
			return nil, err
		}
		return &node{kind: nNot, children: []*node{n}}, nil
	case tLbracket:
		switch {
		case p.cur().typ == tNumber || p.cur().typ == tColon:
			right, err := p.indexExpression()
			if err != nil {
				return nil, err
			}
			return p.projectIfSlice(identity, right)
		case p.cur().typ == tStar && p.peek(1).typ == tRbracket:
			p.advance()
			p.advance()
			right, err := p.projectionRHS(bindingPower(tStar))
			if err != nil {
				return nil, err
			}
			return &node{kind: nProjection, children: []*node{identity, right}}, nil
		}
		return p.multiSelectList()
	case tAt:
		return &node{kind: nCurrent}, nil
	case tExpref:
		n, err := p.expression(0)
		if err != nil {
			return nil, err
		}
		return &node{kind: nExpref, children: []*node{n}}, nil
	case tEOF:
		return nil, &SyntaxError{Msg: "incomplete expression", Pos: tok.pos}
	}
	return nil, &SyntaxError{Msg: fmt.Sprintf("unexpected token: %s", tok.typ), Pos: tok.pos}
}

func (p *parser) led(tok token, left *node) (*node, error) {
	switch tok.typ {
	case tDot:
		if p.cur().typ != tStar {
			right, err := p.dotRHS(bindingPower(tDot))
			if err != nil {
				return nil, err
			}
			if left.kind == nSubexpression {
				left.children = append(left.children, right)
				return left, nil
			}
			return &node{kind: nSubexpression, children: []*node{left, right}}, nil
		}
		p.advance()
		right, err := p.projectionRHS(bindingPower(tDot))
		if err != nil {
			return nil, err
		}
		return &node{kind: nValueProjection, children: []*node{left, right}}, nil
	case tPipe, tOr, tAnd:
		right, err := p.expression(bindingPower(tok.typ))
		if err != nil {
			return nil, err
		}
		kind := map[tokenType]nodeKind{tPipe: nPipe, tOr: nOr, tAnd: nAnd}[tok.typ]
		return &node{kind: kind, children: []*node{left, right}}, nil
	case tLparen:
		if left.kind != nField {
			return nil, &SyntaxError{Msg: "invalid function name", Pos: tok.pos}
		}
		var args []*node
		for p.cur().typ != tRparen {
			arg, err := p.expression(0)
			if err != nil {
				return nil, err
			}
			if p.cur().typ == tComma {
				if err := p.match(tComma); err != nil {
					return nil, err
				}
			}
			args = append(args, arg)
		}
		if err := p.match(tRparen); err != nil {
			return nil, err
		}
		return &node{kind: nFunction, name: left.name, children: args}, nil
	case tFilter:
		cond, err := p.expression(0)
		if err != nil {
			return nil, err
		}
		if err := p.match(tRbracket); err != nil {
			return nil, err
		}
		right := &node{kind: nIdentity}
		if p.cur().typ != tFlatten {
			if right, err = p.projectionRHS(bindingPower(tFilter)); err != nil {
				return nil, err
			}
		}
		return &node{kind: nFilterProjection, children: []*node{left, right, cond}}, nil
	case tFlatten:
		right, err := p.projectionRHS(bindingPower(tFlatten))
		if err != nil {
			return nil, err
		}
		return &node{kind: nProjection, children: []*node{{kind: nFlatten, children: []*node{left}}, right}}, nil
	case tEQ, tNE, tLT, tLTE, tGT, tGTE:
		right, err := p.expression(bindingPower(tok.typ))
		if err != nil {
			return nil, err
		}
		return &node{kind: nComparator, name: tok.typ.String(), children: []*node{left, right}}, nil
	case tLbracket:
		if t := p.cur().typ; t == tNumber || t == tColon {
			right, err := p.indexExpression()
			if err != nil {
				return nil, err
			}
			if left.kind == nIndexExpression {
				left.children = append(left.children, right)
				return left, nil
			}
			return p.projectIfSlice(left, right)
		}
		if err := p.match(tStar); err != nil {
			return nil, err
		}
		if err := p.match(tRbracket); err != nil {
			return nil, err
		}
		right, err := p.projectionRHS(bindingPower(tStar))
		if err != nil {
			return nil, err
		}
		return &node{kind: nProjection, children: []*node{left, right}}, nil
	}
	return nil, &SyntaxError{Msg: fmt.Sprintf("unexpected token: %s", tok.typ), Pos: tok.pos}
}

func (p *parser) indexExpression() (*node, error) {
	if p.cur().typ == tColon || p.peek(1).typ == tColon {
		return p.sliceExpression()
	}
	n := &node{kind: nIndex, value: p.cur().value}
	if err := p.match(tNumber); err != nil {
		return nil, err
	}
	return n, p.match(tRbracket)
}

func (p *parser) sliceExpression() (*node, error) {
	n := &node{kind: nSlice}
	part := 0
	for p.cur().typ != tRbracket && part < 3 {
		switch p.cur().typ {
		case tColon:
			part++
			if part == 3 {
				return nil, p.errorf("too many colons in a slice")
			}
			p.advance()
		case tNumber:
			v := p.cur().value.(int64)
			n.slice[part] = &v
			p.advance()
		default:
			return nil, p.errorf("unexpected token in a slice: %s", p.cur().typ)
		}
	}
	return n, p.match(tRbracket)
}

func (p *parser) projectIfSlice(left, right *node) (*node, error) {
	idx := &node{kind: nIndexExpression, children: []*node{left, right}}
	if right.kind != nSlice {
		return idx, nil
	}
	rhs, err := p.projectionRHS(bindingPower(tStar))
	if err != nil {
		return nil, err
	}
	return &node{kind: nProjection, children: []*node{idx, rhs}}, nil
}

func (p *parser) projectionRHS(bp int) (*node, error) {
	switch t := p.cur().typ; {
	case bindingPower(t) < projectionStop:
		return &node{kind: nIdentity}, nil
	case t == tLbracket, t == tFilter:
		return p.expression(bp)
	case t == tDot:
		p.advance()
		return p.dotRHS(bp)
	}
	return nil, p.errorf("syntax error after a projection: %s", p.cur().typ)
}

func (p *parser) dotRHS(bp int) (*node, error) {
	switch p.cur().typ {
	case tQuoted, tUnquoted, tStar:
		return p.expression(bp)
	case tLbracket:
		p.advance()
		return p.multiSelectList()
	case tLbrace:
		p.advance()
		return p.multiSelectHash()
	}
	return nil, p.errorf("expected an identifier, '[' or '{' after '.', got %s", p.cur().typ)
}

func (p *parser) multiSelectList() (*node, error) {
	n := &node{kind: nMultiSelectList}
	for {
		e, err := p.expression(0)
		if err != nil {
			return nil, err
		}
		n.children = append(n.children, e)
		if p.cur().typ == tRbracket {
			break
		}
		if err := p.match(tComma); err != nil {
			return nil, err
		}
	}
	return n, p.match(tRbracket)
}

func (p *parser) multiSelectHash() (*node, error) {
	n := &node{kind: nMultiSelectDict}
	for {
		key := p.cur()
		if key.typ != tQuoted && key.typ != tUnquoted {
			return nil, p.errorf("expected a key, got %s", key.typ)
		}
		p.advance()
		if err := p.match(tColon); err != nil {
			return nil, err
		}
		v, err := p.expression(0)
		if err != nil {
			return nil, err
		}
		n.children = append(n.children, &node{kind: nKeyValPair, name: key.text, children: []*node{v}})
		if p.cur().typ == tComma {
			p.advance()
			continue
		}
		if err := p.match(tRbrace); err != nil {
			return nil, err
		}
		return n, nil
	}
}
