package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/pgsvc/pgsvc/reconcile"
)

func runReconcileOffline(ctx context.Context, args []string, out, errOut io.Writer) error {
	var mf modelFlags
	var state, format string
	var dryRun bool
	fs := newFlags("reconcile", "reconcile --dry-run --inventory FILE --state FILE [-o text|json]", errOut)
	mf.register(fs)
	fs.BoolVar(&dryRun, "dry-run", false, "print what would change and change nothing")
	fs.StringVar(&state, "state", "", "Patroni state `file` (etcdctl get --prefix <namespace> -w json): plan from the inventory's static view to this live view")
	fs.StringVar(&format, "o", "text", "output `format`: text or json")
	if err := parse(fs, args); err != nil {
		return err
	}
	if format != "text" && format != "json" {
		return fmt.Errorf("-o %q: want text or json", format)
	}
	if state == "" {
		return errors.New("--state is required (the offline form compares the inventory with a Patroni snapshot)")
	}
	if !dryRun {
		return errors.New("with --state only --dry-run is possible: a snapshot cannot be applied")
	}
	_, clusters, err := mf.load()
	if err != nil {
		return err
	}
	live, err := mf.liveFromFile(state, clusters)
	if err != nil {
		return err
	}
	static, err := reconcile.Compute(clusters, reconcile.Live{}, mf.node != "")
	if err != nil {
		return err
	}
	desired, err := reconcile.Compute(clusters, live, mf.node != "")
	if err != nil {
		return err
	}
	return writePlan(reconcile.Diff(static, desired), format, out)
}
