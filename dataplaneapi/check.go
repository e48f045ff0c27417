package dataplaneapi

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/pgsvc/pgsvc/reconcile"
)

// checkError is a config `haproxy -c` rejected, with the lines of its
// output that name files of the conf dir: what the rejection is
// attributed to.
type checkError struct {
	msg   string
	lines []checkLine
}

// checkLine is one line of haproxy's output (paths as in the conf dir) and
// the conf dir's files it names.
type checkLine struct {
	text  string
	files []string
}

func (e *checkError) Error() string { return e.msg }

// check runs `haproxy -c` on what a restart would load: the main config and
// the whole conf dir as it will be (every .cfg file there, pgsvc's or not,
// with the changed files in and the removed ones out). A hand-written file
// declaring the same proxy name is caught here, not by a failed reload.
// A rejection is a *checkError.
func (c *ConfigDir) check(ctx context.Context, changed map[string][]byte, removed []string) error {
	staging, err := os.MkdirTemp("", "pgsvc-check-")
	if err != nil {
		return fmt.Errorf("check config: %w", err)
	}
	defer os.RemoveAll(staging)
	names, err := cfgFiles(c.Dir)
	if err != nil {
		return fmt.Errorf("check config: %w", err)
	}
	main := c.mainConfig()
	for _, n := range names {
		path := filepath.Join(c.Dir, n)
		if _, ok := changed[n]; ok || path == main || slices.Contains(removed, n) {
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("check config: %w", err)
		}
		if err := os.WriteFile(filepath.Join(staging, n), data, 0o600); err != nil {
			return fmt.Errorf("check config: %w", err)
		}
	}
	for name, data := range changed {
		if err := os.WriteFile(filepath.Join(staging, name), data, 0o600); err != nil {
			return fmt.Errorf("check config: %w", err)
		}
	}
	args := []string{"-c"} // not -q: 2.6 then hides the reason too
	if main != "" {
		args = append(args, "-f", main)
	}
	args = append(args, "-f", staging)
	bin := c.HAProxy
	if bin == "" {
		bin = "haproxy"
	}
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		// HAProxy names the staging copy; the operator's file is in Dir.
		reason := strings.ReplaceAll(alerts(string(out)), staging, c.Dir)
		with := ""
		if len(changed)+len(removed) > 0 {
			with = " with the new service files"
		}
		return &checkError{
			msg:   fmt.Sprintf("haproxy -c rejected the config a restart would load (%s and %s%s): %v: %s", main, c.Dir, with, err, reason),
			lines: namedFiles(string(out), staging, c.Dir),
		}
	}
	return nil
}

// namedFiles keeps the lines of haproxy's output that name a file in
// staging ("parsing [<staging>/pg-a-primary.cfg:12] : ...", "[<staging>/
// pg-a.cfg:5] : 'server ...' : could not resolve address ...", "Error(s)
// found in configuration file : <staging>/..."), with staging shown as dir.
func namedFiles(out, staging, dir string) []checkLine {
	re := regexp.MustCompile(regexp.QuoteMeta(staging+string(filepath.Separator)) + `([^\s:\[\]'"/]+)`)
	var lines []checkLine
	for _, line := range strings.Split(out, "\n") {
		m := re.FindAllStringSubmatch(line, -1)
		if len(m) == 0 {
			continue
		}
		l := checkLine{text: oneLine(strings.ReplaceAll(line, staging, dir))}
		for _, sub := range m {
			if !slices.Contains(l.files, sub[1]) {
				l.files = append(l.files, sub[1])
			}
		}
		lines = append(lines, l)
	}
	return lines
}

// rejectedClusters attributes a rejection to the clusters whose new files
// (in changed) haproxy's reasons name, each with the lines naming them.
// None when the reasons name no such file (the main config, a hand-written
// file, one left as it was): then the rejection is not one cluster's.
func (c *ConfigDir) rejectedClusters(err error, changed map[string][]byte) reconcile.ClusterErrors {
	var ce *checkError
	if !errors.As(err, &ce) {
		return nil
	}
	var order []string
	reasons := map[string][]string{}
	for _, l := range ce.lines {
		for _, name := range l.files {
			data, ok := changed[name]
			if !ok || isFingerprintFile(name) {
				continue
			}
			cluster, managed := ManagedCluster(data)
			if !managed || cluster == "" || slices.Contains(reasons[cluster], l.text) {
				continue
			}
			if reasons[cluster] == nil {
				order = append(order, cluster)
			}
			reasons[cluster] = append(reasons[cluster], l.text)
		}
	}
	if len(order) == 0 {
		return nil
	}
	out := make(reconcile.ClusterErrors, len(order))
	for _, cluster := range order {
		out[cluster] = fmt.Errorf("haproxy -c rejected the config a restart would load (%s and %s) with cluster %s's new service files: nothing written for the cluster, its files stay as they were while the other clusters' changes are applied: %s",
			c.mainConfig(), c.Dir, cluster, strings.Join(reasons[cluster], " | "))
	}
	return out
}

// alerts keeps the ALERT lines of haproxy's output (all of it when there
// are none), on one line.
func alerts(out string) string {
	var keep []string
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "[ALERT]") {
			keep = append(keep, strings.TrimSpace(line))
		}
	}
	if len(keep) == 0 {
		return oneLine(out)
	}
	return oneLine(strings.Join(keep, "\n"))
}
