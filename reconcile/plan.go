package reconcile

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// ChangeKind is what happens to a service or a server. The order of the
// constants is the order changes apply within a service: capacity is added
// before it is taken away.
type ChangeKind int

// Kinds of change between two desired states.
const (
	ServiceAdded ChangeKind = iota
	ServiceRemoved
	ServiceChanged // a structural setting: bind, maxconn, balance, check, options
	MemberAdded    // a new cluster member: needs new server lines
	ServerAdded    // out -> active or backup
	ServerActive   // backup -> active
	ServerAddress  // address, port or check port
	ServerWeight
	ServerBackup  // active -> backup
	ServerRemoved // active or backup -> out
	MemberRemoved // a member left the cluster: its server lines go
)

var kindNames = [...]string{"service-added", "service-removed", "service-changed", "member-added",
	"server-added", "server-active", "server-address", "server-weight", "server-backup", "server-removed", "member-removed"}

func (k ChangeKind) String() string { return kindNames[k] }

// MarshalText makes kinds readable in JSON output.
func (k ChangeKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// Structural reports whether a change needs new config lines and a reload;
// every other change is applied live.
func (k ChangeKind) Structural() bool {
	switch k {
	case ServiceAdded, ServiceRemoved, ServiceChanged, MemberAdded, MemberRemoved:
		return true
	}
	return false
}

// Change is one difference between two desired states.
type Change struct {
	Service string     `json:"service"`
	Server  string     `json:"server,omitempty"`
	Kind    ChangeKind `json:"kind"`
	From    string     `json:"from,omitempty"`
	To      string     `json:"to,omitempty"`
}

func (c Change) String() string {
	subject := c.Service
	if c.Server != "" {
		subject += " " + c.Server
	}
	switch {
	case c.From != "" && c.To != "":
		return fmt.Sprintf("%s: %s %s -> %s", subject, c.Kind, c.From, c.To)
	case c.To != "":
		return fmt.Sprintf("%s: %s %s", subject, c.Kind, c.To)
	case c.From != "":
		return fmt.Sprintf("%s: %s (was %s)", subject, c.Kind, c.From)
	}
	return fmt.Sprintf("%s: %s", subject, c.Kind)
}

// Plan is the ordered list of changes from one desired state to another.
type Plan struct {
	Changes []Change `json:"changes"`
}

// Empty reports whether there is nothing to change.
func (p Plan) Empty() bool { return len(p.Changes) == 0 }

// ReloadReasons lists the structural changes; empty means all changes are live.
func (p Plan) ReloadReasons() []string {
	var out []string
	for _, c := range p.Changes {
		if c.Kind.Structural() {
			out = append(out, c.String())
		}
	}
	return out
}

// Diff returns the plan that turns from into to.
func Diff(from, to Desired) Plan {
	var p Plan
	i, j := 0, 0
	for i < len(from.Services) || j < len(to.Services) {
		switch {
		case j == len(to.Services) || (i < len(from.Services) && from.Services[i].Name < to.Services[j].Name):
			p.Changes = append(p.Changes, Change{Service: from.Services[i].Name, Kind: ServiceRemoved, From: from.Services[i].Bind()})
			i++
		case i == len(from.Services) || to.Services[j].Name < from.Services[i].Name:
			p.Changes = append(p.Changes, Change{Service: to.Services[j].Name, Kind: ServiceAdded, To: to.Services[j].Bind()})
			j++
		default:
			p.Changes = append(p.Changes, diffService(&from.Services[i], &to.Services[j])...)
			i++
			j++
		}
	}
	sort.SliceStable(p.Changes, func(a, b int) bool {
		ca, cb := p.Changes[a], p.Changes[b]
		if ca.Service != cb.Service {
			return ca.Service < cb.Service
		}
		if ca.Kind != cb.Kind {
			return ca.Kind < cb.Kind
		}
		return ca.Server < cb.Server
	})
	return p
}

func diffService(a, b *Service) []Change {
	var out []Change
	if fields := structuralDiff(a, b); len(fields) > 0 {
		out = append(out, Change{Service: a.Name, Kind: ServiceChanged, From: strings.Join(fields, ", ")})
	}
	for _, nb := range b.Servers {
		na, ok := a.Server(nb.Name)
		if !ok {
			out = append(out, Change{Service: b.Name, Server: nb.Name, Kind: MemberAdded, To: nb.Slot.String()})
			continue
		}
		out = append(out, diffServer(b.Name, na, nb)...)
	}
	for _, na := range a.Servers {
		if _, ok := b.Server(na.Name); !ok {
			out = append(out, Change{Service: a.Name, Server: na.Name, Kind: MemberRemoved, From: na.Slot.String()})
		}
	}
	return out
}

func diffServer(svc string, a, b Server) []Change {
	var out []Change
	ch := func(k ChangeKind, from, to string) {
		out = append(out, Change{Service: svc, Server: b.Name, Kind: k, From: from, To: to})
	}
	switch {
	case a.Slot == b.Slot:
	case a.Slot == Out:
		ch(ServerAdded, "", b.Slot.String())
	case b.Slot == Out:
		ch(ServerRemoved, a.Slot.String(), "")
	case b.Slot == Active:
		ch(ServerActive, "backup", "active")
	default:
		ch(ServerBackup, "active", "backup")
	}
	if a.Host != b.Host || a.Port != b.Port || a.CheckPort != b.CheckPort || a.CheckSSL != b.CheckSSL {
		ch(ServerAddress, addrString(a), addrString(b))
	}
	if a.Weight != b.Weight {
		ch(ServerWeight, strconv.Itoa(a.Weight), strconv.Itoa(b.Weight))
	}
	return out
}

func addrString(s Server) string {
	a := s.Host + ":" + strconv.Itoa(s.Port)
	if s.CheckPort > 0 {
		a += " check " + strconv.Itoa(s.CheckPort)
	}
	if s.CheckSSL {
		a += " ssl"
	}
	return a
}

func structuralDiff(a, b *Service) []string {
	var f []string
	add := func(cond bool, name string) {
		if cond {
			f = append(f, name)
		}
	}
	add(a.IP != b.IP || a.Port != b.Port, "bind "+a.Bind()+" -> "+b.Bind())
	add(a.Maxconn != b.Maxconn, "maxconn")
	add(a.Balance != b.Balance, "balance")
	add(a.HTTPCheck != b.HTTPCheck || a.CheckURI != b.CheckURI || a.CheckCode != b.CheckCode, "check")
	add(a.Options != b.Options, "default-server options")
	return f
}

// WriteText prints the plan, one change per line.
func (p Plan) WriteText(w io.Writer) error {
	if p.Empty() {
		_, err := fmt.Fprintln(w, "nothing to change")
		return err
	}
	for _, c := range p.Changes {
		if _, err := fmt.Fprintln(w, c.String()); err != nil {
			return err
		}
	}
	return nil
}

// WriteJSON prints the plan as JSON.
func (p Plan) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if p.Changes == nil {
		p.Changes = []Change{}
	}
	return enc.Encode(p)
}
