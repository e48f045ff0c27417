package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sort"
	"strings"

	"github.com/pgsvc/pgsvc/dataplaneapi"
	"github.com/pgsvc/pgsvc/reconcile"
	"github.com/pgsvc/pgsvc/reconcile/dcs"
	"github.com/pgsvc/pgsvc/selector"
)

// modelFlags select the inventory and the part of it one HAProxy carries.
type modelFlags struct {
	inventory string
	node      string
	clusters  listFlag
	namespace string
}

func (m *modelFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&m.inventory, "inventory", "", "Pigsty inventory YAML `file` (required)")
	fs.StringVar(&m.node, "node", "", "inventory `host` of this HAProxy: serve the clusters Pigsty renders onto it")
	fs.Var(&m.clusters, "cluster", "only this `cluster` (repeatable or comma-separated)")
	fs.StringVar(&m.namespace, "namespace", dcs.DefaultNamespace, "Patroni namespace in etcd")
}

// load reads and validates the inventory and picks the served clusters.
func (m *modelFlags) load() (*selector.Model, []*selector.Cluster, error) {
	if m.inventory == "" {
		return nil, nil, errors.New("--inventory is required")
	}
	model, err := selector.Load(m.inventory)
	if err != nil {
		return nil, nil, err
	}
	clusters, err := model.Select(m.node, m.clusters)
	if err != nil {
		return nil, nil, err
	}
	return model, clusters, nil
}

func (m *modelFlags) layout() dcs.Layout {
	l := dcs.DefaultLayout()
	l.Namespace = dcs.NormalizePrefix(m.namespace)
	return l
}

// liveFromFile reads a --state snapshot into the live view ("" = static).
// A snapshot holding neither a served cluster nor an override is refused:
// the live view would silently be the static one (a wrong --namespace, say).
func (m *modelFlags) liveFromFile(path string, clusters []*selector.Cluster) (reconcile.Live, error) {
	if path == "" {
		return reconcile.Live{}, nil
	}
	st, err := dcs.LoadSnapshot(path, m.layout())
	if err != nil {
		return reconcile.Live{}, err
	}
	live := reconcile.Live{Clusters: st.Live(nil), Overrides: st.Overrides}
	if len(st.Overrides) > 0 {
		return live, nil
	}
	names := make([]string, 0, len(clusters))
	for _, c := range clusters {
		if _, ok := st.Clusters[c.Name]; ok {
			return live, nil
		}
		names = append(names, c.Name)
	}
	return reconcile.Live{}, fmt.Errorf("state %s: no Patroni keys under %s for %s (wrong --namespace?)", path, m.layout().Namespace, strings.Join(names, ", "))
}

func runRender(_ context.Context, args []string, out, errOut io.Writer) error {
	var mf modelFlags
	var state, dir, stateFile, fileLayout string
	fs := newFlags("render", "render --inventory FILE [--node HOST] [--cluster NAME]... [--state FILE] [--out DIR]", errOut)
	mf.register(fs)
	fs.StringVar(&stateFile, "haproxy-server-state-file", "", "with --out: the server-state-file `path` the fingerprint file declares, as `pgsvc run` does (default: <out>/pgsvc-server-state without --cluster; none: off)")
	fs.StringVar(&state, "state", "", "Patroni state `file` (etcdctl get --prefix <namespace> -w json) to render the live view")
	fs.StringVar(&dir, "out", "", "write the service files into `dir` instead of stdout")
	fs.StringVar(&fileLayout, "haproxy-file-layout", "", "with --out: "+fileLayoutUsage)
	if err := parse(fs, args); err != nil {
		return err
	}
	layout, err := dataplaneapi.ParseLayout(fileLayout)
	if err != nil {
		return fmt.Errorf("--haproxy-file-layout: %w", err)
	}
	if dir != "" {
		if err := checkDir(dir); err != nil {
			return err
		}
	}
	_, clusters, err := mf.load()
	if err != nil {
		return err
	}
	live, err := mf.liveFromFile(state, clusters)
	if err != nil {
		return err
	}
	desired, err := reconcile.Compute(clusters, live, mf.node != "")
	if err != nil {
		return err
	}
	if dir == "" {
		var b bytes.Buffer
		if err := dataplaneapi.Render(&b, &desired); err != nil {
			return err
		}
		_, err := out.Write(b.Bytes())
		return err
	}
	statePath, err := dataplaneapi.StateFilePath(dir, stateFile, mf.clusters)
	if err != nil {
		return err
	}
	return renderDir(dir, layout, clusters, mf.clusters, statePath, &desired, errOut)
}

// checkDir fails in one line when --out is not a directory: writing each
// file would otherwise fail once per file.
func checkDir(dir string) error {
	info, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("--out %s: no such directory", dir)
	case err != nil:
		return fmt.Errorf("--out %s: %w", dir, err)
	case !info.IsDir():
		return fmt.Errorf("--out %s: not a directory", dir)
	}
	return nil
}

// renderDir writes the service files of layout into dir and, as Pigsty wipes
// <cluster>-*.cfg before rendering, removes the files pgsvc wrote for the
// rendered clusters whose service no longer exists. Files without pgsvc's
// marker, and other clusters' files, are never touched. Everything that can
// fail before a change (reading dir, rendering) happens first; the new files
// are installed all together, then the stale ones removed.
// owned names the --cluster clusters (none: every cluster), whose
// fingerprint `pgsvc run --cluster` with the same clusters compares.
func renderDir(dir string, layout dataplaneapi.Layout, clusters []*selector.Cluster, owned []string, stateFile string, desired *reconcile.Desired, errOut io.Writer) error {
	files, err := dataplaneapi.Files(desired, layout)
	if err != nil {
		return err
	}
	stale, err := staleFiles(dir, clusters, files)
	if err != nil {
		return err
	}
	left, err := layoutLeftovers(dir, layout, desired, files)
	if err != nil {
		return err
	}
	stale = append(stale, left...)
	sort.Strings(stale)
	stale = slices.Compact(stale)
	written, err := dataplaneapi.WriteFiles(dir, files)
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range stale {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%d service files written, but stale ones could not be removed: %w", len(written), errors.Join(errs...))
	}
	// The fingerprint of what is now in dir, which `pgsvc run` compares
	// with what HAProxy loaded (a restart or reload from these files
	// matches it; anything else is reloaded).
	if err := dataplaneapi.WriteFingerprint(dir, owned, stateFile); err != nil {
		return fmt.Errorf("service files written: %w", err)
	}
	fmt.Fprintf(errOut, "%d service files in %s, %d written, %d unchanged, %d removed\n",
		len(files), dir, len(written), len(files)-len(written), len(stale))
	return nil
}

// staleFiles lists, sorted, the files in dir that pgsvc wrote for one of
// the rendered clusters and that the new render does not have.
func staleFiles(dir string, clusters []*selector.Cluster, files map[string][]byte) ([]string, error) {
	names := make([]string, len(clusters))
	for i, c := range clusters {
		names[i] = c.Name
	}
	managed, err := dataplaneapi.ManagedFiles(dir, names)
	if err != nil {
		return nil, fmt.Errorf("--out %s: %w", dir, err)
	}
	var stale []string
	for name := range managed {
		if _, keep := files[name]; !keep {
			stale = append(stale, name)
		}
	}
	sort.Strings(stale)
	return stale, nil
}

// layoutLeftovers lists the files of dir that the other layout gives the
// rendered services and that this render does not write: in the service
// layout they were overwritten in place, in the other one HAProxy would
// load each service twice. Pigsty's own <cluster>-<service>.cfg counts
// (render --out replaces it either way); a <cluster>.cfg only when pgsvc
// wrote it for that cluster. A target file pgsvc wrote for another
// cluster is refused, as `pgsvc run` refuses it.
func layoutLeftovers(dir string, layout dataplaneapi.Layout, desired *reconcile.Desired, files map[string][]byte) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for i := range desired.Services {
		s := &desired.Services[i]
		target := dataplaneapi.FileName(s.Name)
		other := s.Cluster + ".cfg"
		if layout == dataplaneapi.LayoutCluster {
			target, other = other, target
		}
		if data, err := os.ReadFile(filepath.Join(dir, target)); err == nil {
			if owner, managed := dataplaneapi.ManagedCluster(data); managed && owner != s.Cluster {
				return nil, fmt.Errorf("--out %s: %w", dir, dataplaneapi.ForeignClusterError(filepath.Join(dir, target), owner, s.Cluster))
			}
		}
		if _, written := files[other]; written || seen[other] {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, other))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("--out %s: %w", dir, err)
		}
		owner, managed := dataplaneapi.ManagedCluster(data)
		if (!managed && layout == dataplaneapi.LayoutCluster) || (managed && owner == s.Cluster) {
			seen[other] = true
			out = append(out, other)
		}
	}
	return out, nil
}

func runValidate(_ context.Context, args []string, out, errOut io.Writer) error {
	var mf modelFlags
	fs := newFlags("validate", "validate --inventory FILE [--node HOST] [--cluster NAME]...", errOut)
	mf.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	model, clusters, err := mf.load()
	if err != nil {
		return err
	}
	desired, err := reconcile.Compute(clusters, reconcile.Live{}, mf.node != "")
	if err != nil {
		return err
	}
	if mf.node == "" {
		if err := checkNodeBinds(model, clusters); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "inventory %s: %d hosts, %d clusters, %d services OK\n",
		model.Inventory.Path, len(model.Inventory.Hosts), len(clusters), len(desired.Services))
	for _, c := range clusters {
		var svcs []string
		for _, s := range c.Services {
			svcs = append(svcs, fmt.Sprintf("%s:%d", s.Name, s.Port))
		}
		where := "on its members"
		if c.Provider != "" {
			where = "on group " + c.Provider
		}
		fmt.Fprintf(out, "  %s: %d members, services %s (%s, schema v%d)\n",
			c.Name, len(c.Members), strings.Join(svcs, " "), where, schemaOf(c))
	}
	return nil
}

// checkNodeBinds checks, for every HAProxy node that carries any of the
// given clusters (their members, and the hosts of their pg_service_provider
// groups), that the services Pigsty renders onto it do not bind one port,
// as --node checks one node. Nodes carrying the same clusters are checked
// once and reported together.
func checkNodeBinds(model *selector.Model, clusters []*selector.Cluster) error {
	var nodes []string
	seen := map[string]bool{}
	for _, c := range clusters {
		hosts := model.Inventory.Groups[c.Provider]
		if c.Provider == "" {
			hosts = nil
			for _, h := range c.Members {
				hosts = append(hosts, h.Name)
			}
		}
		for _, h := range hosts {
			if !seen[h] {
				seen[h] = true
				nodes = append(nodes, h)
			}
		}
	}
	conflict := map[string]string{} // carried cluster set -> conflict, "" for none
	var order []string
	nodesOf := map[string][]string{}
	for _, node := range nodes {
		carried, err := model.Select(node, nil)
		if err != nil {
			return err
		}
		key := clusterSet(carried)
		msg, done := conflict[key]
		if !done && len(carried) > 1 { // one cluster's ports are unique already (NewModel)
			if msg, err = bindConflict(carried); err != nil {
				return err
			}
		}
		conflict[key] = msg
		if msg == "" {
			continue
		}
		if nodesOf[msg] == nil {
			order = append(order, msg)
		}
		nodesOf[msg] = append(nodesOf[msg], node)
	}
	var errs []error
	for _, msg := range order {
		where := "node "
		if len(nodesOf[msg]) > 1 {
			where = "nodes "
		}
		errs = append(errs, fmt.Errorf("%s: %s on %s%s", model.Inventory.Path, msg, where, strings.Join(nodesOf[msg], ", ")))
	}
	return errors.Join(errs...)
}

// bindConflict is the same-node bind check for the clusters one node
// carries: the conflict, "" for none, or an error that is not one.
func bindConflict(carried []*selector.Cluster) (string, error) {
	d, err := reconcile.Compute(carried, reconcile.Live{}, false)
	if err != nil {
		return "", err
	}
	return d.BindConflict(), nil
}

func clusterSet(cs []*selector.Cluster) string {
	names := make([]string, len(cs))
	for i, c := range cs {
		names[i] = c.Name
	}
	return strings.Join(names, ",")
}

func schemaOf(c *selector.Cluster) int {
	if len(c.Services) > 0 {
		return c.Services[0].Schema
	}
	return 2
}

// version is set at link time by `make static` (-X main.version=...).
var version = ""

// versionString is the link-time version, else the module's.
func versionString() string {
	if version != "" {
		return version
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		return info.Main.Version
	}
	return "(unknown)"
}

func runVersion(_ context.Context, args []string, out, errOut io.Writer) error {
	fs := newFlags("version", "version", errOut)
	if err := parse(fs, args); err != nil {
		return err
	}
	v := versionString()
	info, ok := debug.ReadBuildInfo()
	fmt.Fprintf(out, "pgsvc %s", v)
	if ok {
		fmt.Fprintf(out, " %s", info.GoVersion)
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" || s.Key == "vcs.time" || s.Key == "vcs.modified" || s.Key == "CGO_ENABLED" {
				fmt.Fprintf(out, " %s=%s", s.Key, s.Value)
			}
		}
	}
	fmt.Fprintln(out)
	return nil
}

// writePlan prints a plan and turns "changes pending" into exit status 2.
func writePlan(p reconcile.Plan, format string, out io.Writer) error {
	var err error
	switch format {
	case "text":
		err = p.WriteText(out)
	case "json":
		err = p.WriteJSON(out)
	default:
		return fmt.Errorf("-o %q: want text or json", format)
	}
	if err != nil {
		return err
	}
	if !p.Empty() {
		return &exitError{code: 2}
	}
	return nil
}
