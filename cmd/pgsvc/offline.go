package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
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
func (m *modelFlags) liveFromFile(path string) (reconcile.Live, error) {
	if path == "" {
		return reconcile.Live{}, nil
	}
	st, err := dcs.LoadSnapshot(path, m.layout())
	if err != nil {
		return reconcile.Live{}, err
	}
	return reconcile.Live{Clusters: st.Live(nil), Overrides: st.Overrides}, nil
}

func runRender(_ context.Context, args []string, out, errOut io.Writer) error {
	var mf modelFlags
	var state, dir string
	fs := newFlags("render", "render --inventory FILE [--node HOST] [--cluster NAME]... [--state FILE] [--out DIR]", errOut)
	mf.register(fs)
	fs.StringVar(&state, "state", "", "Patroni state `file` (etcdctl get --prefix <namespace> -w json) to render the live view")
	fs.StringVar(&dir, "out", "", "write one <cluster>-<service>.cfg per service into `dir` instead of stdout")
	if err := parse(fs, args); err != nil {
		return err
	}
	_, clusters, err := mf.load()
	if err != nil {
		return err
	}
	live, err := mf.liveFromFile(state)
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
	files, err := dataplaneapi.Files(&desired)
	if err != nil {
		return err
	}
	written, err := dataplaneapi.WriteFiles(dir, files)
	if err != nil {
		return err
	}
	fmt.Fprintf(errOut, "%d service files in %s, %d written, %d unchanged\n", len(files), dir, len(written), len(files)-len(written))
	return nil
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

func schemaOf(c *selector.Cluster) int {
	if len(c.Services) > 0 {
		return c.Services[0].Schema
	}
	return 2
}

// version is set at link time by `make static` (-X main.version=...).
var version = ""

func runVersion(_ context.Context, args []string, out, errOut io.Writer) error {
	fs := newFlags("version", "version", errOut)
	if err := parse(fs, args); err != nil {
		return err
	}
	v := version
	info, ok := debug.ReadBuildInfo()
	if v == "" && ok {
		v = info.Main.Version
	}
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
