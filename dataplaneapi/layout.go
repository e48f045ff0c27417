package dataplaneapi

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/pgsvc/pgsvc/reconcile"
)

// Layout is how the service files are laid out in the config dir.
type Layout string

const (
	// LayoutService is Pigsty's: one <cluster>-<service>.cfg per service.
	LayoutService Layout = "service"
	// LayoutCluster is one <cluster>.cfg holding every service of the
	// cluster: a quarter of the files, for nodes that carry so many
	// clusters that HAProxy's HAPROXY_CFGFILES (every config path, joined)
	// would pass Linux's 128 KiB limit for one environment string.
	LayoutCluster Layout = "cluster"
)

// ParseLayout reads a layout setting ("" is the default, per service).
func ParseLayout(s string) (Layout, error) {
	switch Layout(s) {
	case "", LayoutService:
		return LayoutService, nil
	case LayoutCluster:
		return LayoutCluster, nil
	}
	return "", fmt.Errorf("file layout %q: want %q (one file per service, as Pigsty) or %q (one file per cluster)", s, LayoutService, LayoutCluster)
}

// fileOf names the file that holds service s.
func (l Layout) fileOf(s *reconcile.Service) string {
	if l == LayoutCluster {
		return s.Cluster + ".cfg"
	}
	return FileName(s.Name)
}

// unit is one file and the services it holds, in order.
type unit struct {
	name, cluster string
	services      []*reconcile.Service
}

// otherFileOf names the file the other layout gives service s: a file a
// switch of layouts leaves behind.
func (l Layout) otherFileOf(s *reconcile.Service) string {
	if l == LayoutCluster {
		return LayoutService.fileOf(s)
	}
	return LayoutCluster.fileOf(s)
}

// units groups services into the files of layout l, in the order of their
// first service. Two services that would share a file name (cluster pg's
// service test-primary and cluster pg-test's primary) are an error, and so
// is a name pgsvc or HAProxy uses for something else.
func (l Layout) units(services []reconcile.Service) ([]*unit, error) {
	byName := map[string]*unit{}
	var out []*unit
	for i := range services {
		s := &services[i]
		name := l.fileOf(s)
		u := byName[name]
		switch {
		case u == nil:
			if err := reservedFile(name); err != nil {
				return nil, fmt.Errorf("service %s of cluster %s: %w", s.Name, s.Cluster, err)
			}
			u = &unit{name: name, cluster: s.Cluster}
			byName[name] = u
			out = append(out, u)
		case u.cluster != s.Cluster:
			return nil, fmt.Errorf("services %s (cluster %s) and %s (cluster %s) would share the file %s: rename one, or use another file layout",
				u.services[0].Name, u.cluster, s.Name, s.Cluster, name)
		}
		u.services = append(u.services, s)
	}
	return out, nil
}

// reservedFile refuses a service file name that pgsvc or HAProxy use for
// something else: pgsvc's fingerprint files (skipped as service files,
// so rewritten and reloaded on every pass), the main config, or a path.
func reservedFile(name string) error {
	switch {
	case strings.HasPrefix(name, fingerprintPrefix):
		return fmt.Errorf("file %s would be taken for pgsvc's fingerprint file (%s*.cfg): rename the cluster", name, fingerprintPrefix)
	case name == "haproxy.cfg":
		return fmt.Errorf("file %s is HAProxy's main config: rename the cluster", name)
	case strings.ContainsAny(name, "/\\\x00") || strings.HasPrefix(name, "."):
		return fmt.Errorf("file name %q is not a plain file name: rename the cluster or service", name)
	}
	return nil
}

// render writes the unit's services one after another; each section starts
// with the managed marker and its cluster, so a file of either layout
// reads the same way.
func (u *unit) render() ([]byte, error) {
	var b bytes.Buffer
	for _, s := range u.services {
		if err := RenderService(&b, s); err != nil {
			return nil, fmt.Errorf("render %s: %w", s.Name, err)
		}
	}
	return b.Bytes(), nil
}

// serviceHeader starts every service's section of a file.
const serviceHeader = "# service: "

// sections splits a service file into its services' sections, by name, in
// order. Text before the first header (none in pgsvc's files) is left out.
func sections(data []byte) (names []string, byName map[string][]byte) {
	byName = map[string][]byte{}
	name, start := "", -1
	flush := func(end int) {
		if start >= 0 {
			names = append(names, name)
			byName[name] = data[start:end]
		}
	}
	for off := 0; off < len(data); {
		line := data[off:]
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			line = line[:i+1]
		}
		if h, ok := bytes.CutPrefix(line, []byte(serviceHeader)); ok {
			flush(off)
			n, _, _ := strings.Cut(string(h), " ")
			name, start = n, off
		}
		off += len(line)
	}
	flush(len(data))
	return names, byName
}

// fileReasons says, per service, what differs between a file's old
// and new content beyond what HAProxy changes at runtime: a service added,
// removed or changed. had is false for a new file.
func fileReasons(old, new []byte, had bool) []string {
	var oldNames []string
	oldSecs := map[string][]byte{}
	if had {
		oldNames, oldSecs = sections(old)
	}
	newNames, newSecs := sections(new)
	var reasons []string
	for _, n := range newNames {
		o, ok := oldSecs[n]
		switch {
		case !ok:
			reasons = append(reasons, "service "+n+" added")
		case structure(o) != structure(newSecs[n]):
			reasons = append(reasons, "service "+n+" changed beyond runtime settings")
		}
	}
	for _, n := range oldNames {
		if _, ok := newSecs[n]; !ok {
			reasons = append(reasons, "service "+n+" removed")
		}
	}
	return reasons
}

// removedReasons names the services of a file that goes away.
func removedReasons(name string, old []byte) []string {
	names, _ := sections(old)
	if len(names) == 0 {
		return []string{"file " + name + " removed"}
	}
	out := make([]string, 0, len(names))
	for _, n := range names {
		out = append(out, "service "+n+" removed")
	}
	return out
}
