package dataplaneapi

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/pgsvc/pgsvc/reconcile"
)

// managedMarker is in the first line of every file pgsvc writes; files
// without it are never touched.
const managedMarker = "(managed by pgsvc"

// ConfigDir keeps the service files HAProxy loads equal to the desired state.
type ConfigDir struct {
	Dir        string   // the service files, as Layout says
	Layout     Layout   // "": one file per service
	MainConfig string   // global/defaults file loaded before Dir ("": Dir/haproxy.cfg, else haproxy.cfg beside Dir, if present)
	HAProxy    string   // haproxy binary for `haproxy -c`
	Reloader   Reloader // nil: never reload (structural changes are then an error), unless DetectReload finds one
	// DetectReload, when set, is asked for a Reloader each time one is
	// needed and Reloader is nil: a master CLI that was not ready when
	// pgsvc started is found at the first reload it needs, not never.
	DetectReload func(context.Context) (Reloader, string)
	// Clusters, when set (--cluster), are the only clusters whose files this
	// pgsvc owns: a full pass never removes another cluster's file.
	Clusters []string
	// StateFile, when set (an absolute path), is HAProxy's global
	// server-state-file, declared in the fingerprint file. Before each
	// reload pgsvc makes it holds `show servers state`, so the new worker
	// starts every server with the old one's health instead of every
	// enabled slot UP until its first check (in a primary service, that
	// routes new sessions to replicas); once the new worker answers it is
	// emptied again, so a later reload or restart by anyone else does not
	// load stale health.
	StateFile  string
	stateReady bool // StateFile exists and holds no state from before this process

	// structs mirrors the structure (hash) of each owned service file on
	// disk: read whole on a full pass (or at first use), kept in step with
	// every write. fp caches its fingerprint ("" until computed).
	structs map[string]string
	fp      string
	// byContent caches structure hashes by file content: a full pass over
	// thousands of unchanged files hashes their bytes, not their structure.
	byContent map[[32]byte]string
}

// ManagedCluster reports whether a service file was written by pgsvc and
// the cluster its `# cluster` line names ("" when it has none).
func ManagedCluster(data []byte) (cluster string, managed bool) {
	first, rest, _ := bytes.Cut(data, []byte("\n"))
	if !bytes.Contains(first, []byte(managedMarker)) {
		return "", false
	}
	second, _, _ := bytes.Cut(rest, []byte("\n"))
	if c, ok := bytes.CutPrefix(second, []byte("# cluster ")); ok {
		return string(bytes.TrimSpace(c)), true
	}
	return "", true
}

// PersistResult says what Persist did or, in a dry run, would do.
type PersistResult struct {
	Written []string `json:"written,omitempty"`
	Removed []string `json:"removed,omitempty"`
	Reload  []string `json:"reload_reasons,omitempty"`
	// Diff holds, per written file, its changed lines: "-" old, "+" new.
	Diff map[string][]string `json:"file_changes,omitempty"`
	// Rejected are the clusters whose new files `haproxy -c` refused (its
	// reasons named their files): their files stay as they were, the
	// other clusters' changes are checked without them and applied.
	Rejected reconcile.ClusterErrors `json:"-"`
}

// Changed reports whether any file changes.
func (r PersistResult) Changed() bool { return len(r.Written)+len(r.Removed) > 0 }

// Persist renders the given services and writes the files that differ, after checking
// them with `haproxy -c`. A change that HAProxy cannot apply at runtime (a
// service added or removed, a new server line, a setting of the listen
// section) asks the Reloader for one graceful reload; if the reload fails,
// the previous files are put back, so a restart loads what HAProxy runs.
// The fingerprint file is kept equal to the service files' structure.
//
// A full pass (every service this HAProxy carries) also removes managed files
// no service wants any more. A keyed pass reads only its services' files:
// services appear and disappear with the inventory, which is a full pass.
//
// A cluster whose new files `haproxy -c` refuses keeps its files; the
// other clusters are applied, and the refused ones come back in
// PersistResult.Rejected and as the error (reconcile.ClusterErrors).
func (c *ConfigDir) Persist(ctx context.Context, services []reconcile.Service, full bool, dryRun bool) (PersistResult, error) {
	res, err := c.persist(ctx, services, persistOptions{full: full, dryRun: dryRun})
	switch {
	case len(res.Rejected) == 0:
	case err == nil:
		err = res.Rejected
	default:
		err = errors.Join(err, res.Rejected)
	}
	return res, err
}

// persistOptions are Persist's, and what the syncer adds to them.
type persistOptions struct {
	full, dryRun bool
	// keep names clusters whose files stay as they are (HAProxy refused
	// one of their commands, or `haproxy -c` their new files): not
	// rewritten, and not stale in a full pass.
	keep map[string]bool
	// confirm, when set, runs after the Reloader returned: a reload it
	// does not confirm (no new worker, another config running) failed.
	confirm func(context.Context) error
	// running, when set, reads the fingerprint HAProxy runs: after a
	// failed reload the files are put back unless it runs the new ones.
	running func(context.Context) (string, error)
	// held, when set, says why no reload may be sent for the files of
	// fingerprint desired ("": it may): files are written, a structural
	// change is an error.
	held func(desired string) string
	// state, when set, reads the running servers' state for StateFile.
	state func(context.Context) (string, error)
}

// persist plans, checks and applies the files. When `haproxy -c` rejects
// the plan and its reasons name new files of some clusters, those clusters
// are left out (PersistResult.Rejected) and the rest is planned and checked
// again: a set of files is installed, and reloaded, only once it passed.
func (c *ConfigDir) persist(ctx context.Context, services []reconcile.Service, o persistOptions) (PersistResult, error) {
	var rejected reconcile.ClusterErrors
	for {
		p, err := c.plan(services, o)
		p.res.Rejected = rejected
		if err != nil || o.dryRun || !p.res.Changed() {
			return p.res, err
		}
		if err := c.prepareStateFile(); err != nil {
			return p.res, err
		}
		// Every reload is checked first: a hand-written file added since the
		// last check may declare a proxy of a file only removed now.
		if p.needCheck || len(p.res.Reload) > 0 {
			if err := c.check(ctx, p.changed, p.res.Removed); err != nil {
				bad := c.rejectedClusters(err, p.changed)
				if len(bad) == 0 {
					return p.res, fmt.Errorf("nothing written: %w", err)
				}
				// One cluster's new files fail alone: that cluster keeps
				// its files, the rest is planned and checked again without
				// them (each round drops a cluster, so this ends).
				if rejected == nil {
					rejected = reconcile.ClusterErrors{}
				}
				maps.Copy(rejected, bad)
				services, o = without(services, o, bad)
				continue
			}
		}
		return p.res, c.apply(ctx, p, o)
	}
}

// without leaves the clusters in bad out of a persist: their services are
// not rendered, and their files stay (none of them is stale).
func without(services []reconcile.Service, o persistOptions, bad reconcile.ClusterErrors) ([]reconcile.Service, persistOptions) {
	keep := make(map[string]bool, len(o.keep)+len(bad))
	maps.Copy(keep, o.keep)
	for c := range bad {
		keep[c] = true
	}
	o.keep = keep
	return slices.DeleteFunc(slices.Clone(services), func(s reconcile.Service) bool { return bad[s.Cluster] != nil }), o
}

// filePlan is what one persist would change on disk.
type filePlan struct {
	res       PersistResult
	changed   map[string][]byte // new contents, the fingerprint file's included
	previous  map[string][]byte // what the written and removed files held
	next      map[string]string // the structures once changed
	fp        string            // their fingerprint
	needCheck bool
}

// plan renders the services and compares them with the files on disk;
// nothing is written.
func (c *ConfigDir) plan(services []reconcile.Service, o persistOptions) (filePlan, error) {
	full := o.full
	p := filePlan{previous: map[string][]byte{}, changed: map[string][]byte{}}
	res := &p.res
	existing, err := c.existingFiles(services, full)
	if err != nil {
		return p, err
	}
	if err := c.loadStructures(existing, full); err != nil {
		return p, err
	}
	units, err := c.Layout.units(services)
	if err != nil {
		return p, err
	}
	for _, u := range units {
		data, err := u.render()
		if err != nil {
			return p, err
		}
		name := u.name
		old, had := existing[name]
		delete(existing, name)
		if had && bytes.Equal(old, data) {
			continue
		}
		if !had {
			if err := c.refuseForeign(name, u.cluster); err != nil {
				return p, err
			}
		} else if owner, _ := ManagedCluster(old); owner != u.cluster {
			return p, ForeignClusterError(filepath.Join(c.Dir, name), owner, u.cluster)
		} else {
			p.previous[name] = old
		}
		p.changed[name] = data
		res.Written = append(res.Written, name)
		if res.Diff == nil {
			res.Diff = map[string][]string{}
		}
		res.Diff[name] = LineDiff(old, data)
		p.needCheck = p.needCheck || !had || slotState(old) != slotState(data)
		res.Reload = append(res.Reload, fileReasons(old, data, had)...)
	}
	for name, old := range existing {
		if cluster, _ := ManagedCluster(old); o.keep[cluster] {
			continue // left as it is with its cluster
		}
		p.previous[name] = old
		res.Removed = append(res.Removed, name)
		res.Reload = append(res.Reload, removedReasons(name, old)...)
	}
	p.next = c.structs
	if len(p.changed)+len(res.Removed) == 0 {
		p.fp = c.fingerprint()
	} else {
		p.next = maps.Clone(c.structs)
		for name, data := range p.changed {
			p.next[name] = structHash(data)
		}
		for _, name := range res.Removed {
			delete(p.next, name)
		}
		p.fp = fingerprintOf(p.next)
	}
	fpName, fpData, fpOld, err := c.fingerprintChange(p.fp)
	if err != nil {
		return p, err
	}
	if fpData != nil {
		p.changed[fpName] = fpData
		res.Written = append(res.Written, fpName)
		if fpOld != nil {
			p.previous[fpName] = fpOld
		}
	}
	sort.Strings(res.Written)
	sort.Strings(res.Removed)
	sort.Strings(res.Reload)
	return p, nil
}

// apply installs a checked plan and reloads for its structural changes;
// if the reload fails, the previous files are put back.
func (c *ConfigDir) apply(ctx context.Context, p filePlan, o persistOptions) error {
	res := p.res
	if err := c.install(p.changed, res.Removed); err != nil {
		c.setStructures(nil) // the disk may be partly new: read it again
		return err
	}
	prevStructs, prevFP := c.structs, c.fingerprint()
	c.setStructures(p.next)
	if len(res.Reload) == 0 {
		return nil
	}
	if o.held != nil {
		if why := o.held(p.fp); why != "" {
			return fmt.Errorf("config changed structurally (%s); files written, reloads held: %s", strings.Join(res.Reload, "; "), why)
		}
	}
	if r, why := c.reloader(ctx); r == nil {
		return fmt.Errorf("config changed structurally (%s) and no reload is configured%s", strings.Join(res.Reload, "; "), why)
	}
	err := c.reload(ctx, o.state, o.confirm)
	if err == nil {
		return nil
	}
	err = fmt.Errorf("reload haproxy for %s: %w", strings.Join(res.Reload, "; "), err)
	if o.running != nil {
		if running, rerr := o.running(ctx); rerr == nil && running == p.fp {
			// Confirmed late: HAProxy runs the new files after all.
			return fmt.Errorf("%w; HAProxy runs the new files now, they stay", err)
		}
	}
	if rerr := c.restore(p.changed, p.previous); rerr != nil {
		c.setStructures(nil) // the disk is partly old, partly new: read it again
		return fmt.Errorf("%w; putting the previous files back failed too: %v", err, rerr)
	}
	c.setStructures(prevStructs)
	c.fp = prevFP
	return fmt.Errorf("%w; the previous files were put back, so a restart loads what HAProxy runs", err)
}

// install writes the changed files and removes the removed ones, the
// fingerprint file last: an external reload in between then loads the old
// fingerprint (pgsvc sees the drift and reloads), never the new one with
// an old service file (pgsvc would believe HAProxy runs the files).
func (c *ConfigDir) install(changed map[string][]byte, removed []string) error {
	services, fingerprints := map[string][]byte{}, map[string][]byte{}
	for name, data := range changed {
		if isFingerprintFile(name) {
			fingerprints[name] = data
		} else {
			services[name] = data
		}
	}
	if _, err := WriteFiles(c.Dir, services); err != nil {
		return err
	}
	for _, name := range removed {
		if err := os.Remove(filepath.Join(c.Dir, name)); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("remove %s: %w", filepath.Join(c.Dir, name), err)
		}
	}
	if len(removed) > 0 {
		if err := syncDir(c.Dir); err != nil { // the removals are durable too
			return err
		}
	}
	_, err := WriteFiles(c.Dir, fingerprints)
	return err
}

// reloader is the Reloader to use now, or nil and why not (": reason",
// "" when nothing was detected).
func (c *ConfigDir) reloader(ctx context.Context) (Reloader, string) {
	if c.Reloader != nil || c.DetectReload == nil {
		return c.Reloader, ""
	}
	r, why := c.DetectReload(ctx)
	if r == nil {
		return nil, ": " + why
	}
	c.Reloader = r
	return r, ""
}

// maxEnvString is Linux's limit on one environment string (MAX_ARG_STRLEN,
// 32 pages), "HAPROXY_CFGFILES=" and the final NUL included.
const maxEnvString = 32 * 4096

// reload asks the Reloader for a reload, unless it would kill HAProxy:
// 2.6's master exports every config path, joined, in HAPROXY_CFGFILES
// when it re-executes itself, and past Linux's limit for one environment
// string the exec fails and the master exits ("Argument list too long",
// then no HAProxy at all), although `haproxy -c` passes. With a StateFile,
// state (when set) is saved there first, and confirm (when set) waits for
// the new worker; the file is emptied again either way.
func (c *ConfigDir) reload(ctx context.Context, state func(context.Context) (string, error), confirm func(context.Context) error) (err error) {
	n, files, err := c.cfgFilesLen()
	if err != nil {
		return err
	}
	if n >= maxEnvString {
		return fmt.Errorf("reload refused: HAProxy would export %d config paths in HAPROXY_CFGFILES (%d bytes), past Linux's %d-byte limit for one environment string; its master would fail to re-execute and exit. Fewer files in %s are needed: haproxy_file_layout: cluster (--haproxy-file-layout cluster) puts each cluster's services in one file, or use a shorter path",
			files, n, maxEnvString, c.Dir)
	}
	if c.StateFile != "" && state != nil {
		dump, serr := state(ctx)
		if serr != nil {
			return fmt.Errorf("save server state to %s before the reload: %w", c.StateFile, serr)
		}
		if err := c.writeState([]byte(dump)); err != nil {
			return err
		}
		defer func() {
			if cerr := c.writeState(nil); cerr != nil && err == nil {
				err = cerr
			}
		}()
	}
	if err = c.Reloader.Reload(ctx); err == nil && confirm != nil {
		err = confirm(ctx)
	}
	return err
}

// DefaultStateFile names the server-state file in the config dir (not a
// .cfg: HAProxy does not load it as config).
const DefaultStateFile = "pgsvc-server-state"

// StateFilePath is the absolute server-state-file path for a setting ("":
// the default; "none": off) of the pgsvc owning clusters (all when
// empty) of dir. HAProxy has one global server-state-file: pgsvc
// instances sharing an HAProxy with --cluster get none unless told.
func StateFilePath(dir, setting string, owned []string) (string, error) {
	path := setting
	switch {
	case path == "none":
		return "", nil
	case path == "" && len(owned) > 0:
		return "", nil
	case path == "":
		path = filepath.Join(dir, DefaultStateFile)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("server state file %q: %w", path, err)
	}
	if d, _ := filepath.Abs(dir); strings.HasSuffix(abs, ".cfg") && filepath.Dir(abs) == d {
		return "", fmt.Errorf("server state file %q: HAProxy would load it from %s as config; name it without .cfg", path, dir)
	}
	return abs, nil
}

// writeState replaces StateFile's content atomically (empty: no state).
func (c *ConfigDir) writeState(data []byte) error {
	if _, err := WriteFiles(filepath.Dir(c.StateFile), map[string][]byte{filepath.Base(c.StateFile): data}); err != nil {
		return fmt.Errorf("server state file %s: %w", c.StateFile, err)
	}
	return nil
}

// prepareStateFile makes StateFile exist, and empties what an earlier pgsvc
// may have left there (killed between saving state and reloading): HAProxy
// then notes an empty file instead of warning about a missing one, and
// never loads health older than this process.
func (c *ConfigDir) prepareStateFile() error {
	if c.StateFile == "" || c.stateReady {
		return nil
	}
	if err := c.writeState(nil); err != nil {
		return err
	}
	c.stateReady = true
	return nil
}

// cfgFilesLen is the length of HAPROXY_CFGFILES for the main config and
// every .cfg file in Dir, and the number of paths in it.
func (c *ConfigDir) cfgFilesLen() (int, int, error) {
	names, err := cfgFiles(c.Dir)
	if err != nil {
		return 0, 0, err
	}
	n, files := len("HAPROXY_CFGFILES=")+1, 0
	main := c.mainConfig()
	if main != "" {
		n, files = n+len(main)+1, 1
	}
	for _, name := range names {
		if path := filepath.Join(c.Dir, name); path != main {
			n, files = n+len(path)+1, files+1
		}
	}
	return n, files, nil
}

// restore puts back what a failed reload's files replaced: previous
// contents where there were some, no file where there was none.
func (c *ConfigDir) restore(written, previous map[string][]byte) error {
	back := map[string][]byte{}
	var errs []error
	for name := range written {
		if old, ok := previous[name]; ok {
			back[name] = old
		} else if err := os.Remove(filepath.Join(c.Dir, name)); err != nil && !os.IsNotExist(err) {
			errs = append(errs, err)
		}
	}
	for name, old := range previous {
		back[name] = old // removed files come back too
	}
	if _, err := WriteFiles(c.Dir, back); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// refuseForeign stops pgsvc from overwriting a file it did not write, or
// one it wrote for another cluster (another pgsvc's, --cluster, with a
// name this layout gives to cluster's file).
func (c *ConfigDir) refuseForeign(name, cluster string) error {
	path := filepath.Join(c.Dir, name)
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	owner, managed := ManagedCluster(data)
	switch {
	case !managed:
		return fmt.Errorf("%s exists and was not written by pgsvc (its first line lacks %q): not overwritten; move it away or merge it into the inventory", path, managedMarker+": edits are overwritten)")
	case owner != cluster:
		return ForeignClusterError(path, owner, cluster)
	}
	return nil // another pgsvc's (--cluster) file for this cluster: it is the desired one
}

// ForeignClusterError refuses to overwrite path, which pgsvc wrote for
// cluster owner, with cluster's services.
func ForeignClusterError(path, owner, cluster string) error {
	return fmt.Errorf("%s holds cluster %s's services, not cluster %s's: not overwritten; rename one of the clusters or use another file layout", path, owner, cluster)
}

// loadStructures keeps c.structs equal to the owned service files on disk:
// a full pass read them all; otherwise they are read once, at first use.
func (c *ConfigDir) loadStructures(existing map[string][]byte, full bool) error {
	if full {
		c.setStructures(c.structures(existing))
		return nil
	}
	if c.structs != nil {
		return nil
	}
	all, err := ManagedFiles(c.Dir, c.Clusters)
	if err != nil {
		return err
	}
	c.setStructures(c.structures(all))
	return nil
}

// structures maps each service file to the hash of its structure, from
// the cache where the content is one already seen; the cache then holds
// just these files' contents.
func (c *ConfigDir) structures(files map[string][]byte) map[string]string {
	out := make(map[string]string, len(files))
	cache := make(map[[32]byte]string, len(files))
	for name, data := range files {
		if isFingerprintFile(name) {
			continue
		}
		sum := sha256.Sum256(data)
		h, ok := c.byContent[sum]
		if !ok {
			h = structHash(data)
		}
		out[name], cache[sum] = h, h
	}
	c.byContent = cache
	return out
}

func (c *ConfigDir) setStructures(s map[string]string) {
	c.structs, c.fp = s, ""
}

// fingerprint is the fingerprint of c.structs, computed once per change.
func (c *ConfigDir) fingerprint() string {
	if c.fp == "" {
		c.fp = fingerprintOf(c.structs)
	}
	return c.fp
}

// fingerprintChange returns the fingerprint file to write for fingerprint fp
// (nil data when it is already on disk) and what the file held.
func (c *ConfigDir) fingerprintChange(fp string) (name string, data, old []byte, err error) {
	name, env := fingerprintOwner(c.Clusters)
	want := fingerprintFileContent(env, fp, c.StateFile)
	old, err = os.ReadFile(filepath.Join(c.Dir, name))
	switch {
	case os.IsNotExist(err):
		return name, want, nil, nil
	case err != nil:
		return "", nil, nil, fmt.Errorf("read %s: %w", filepath.Join(c.Dir, name), err)
	case bytes.Equal(old, want):
		return name, nil, old, nil
	}
	return name, want, old, nil
}

// Fingerprint is the fingerprint of the owned service files on disk, and
// the environment variable HAProxy reports it in.
func (c *ConfigDir) Fingerprint() (fp, env string, err error) {
	if err := c.loadStructures(nil, false); err != nil {
		return "", "", err
	}
	_, env = fingerprintOwner(c.Clusters)
	return c.fingerprint(), env, nil
}

// existingFiles reads the current files: every managed file in Dir (of the
// owned clusters) for a full pass, else just the files of the given services.
func (c *ConfigDir) existingFiles(services []reconcile.Service, full bool) (map[string][]byte, error) {
	if full {
		return ManagedFiles(c.Dir, c.Clusters)
	}
	names := make([]string, 0, len(services))
	seen := make(map[string]bool, len(services))
	// The other layout's files of these services' clusters, left by a
	// switch of layouts, are read too: they go, or HAProxy would load
	// each service twice.
	// A name that is one service's file in this layout is that file,
	// whatever the other layout would call it (cluster pg's service test
	// and cluster pg-test's cluster file are both pg-test.cfg).
	left := map[string]string{}
	for i := range services {
		if n := c.Layout.fileOf(&services[i]); !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	for i := range services {
		if n := c.Layout.otherFileOf(&services[i]); !seen[n] {
			seen[n] = true
			names = append(names, n)
			left[n] = services[i].Cluster
		}
	}
	files, err := readManaged(c.Dir, names, nil)
	if err != nil {
		return nil, err
	}
	for n, cluster := range left {
		if owner, _ := ManagedCluster(files[n]); owner != cluster {
			delete(files, n) // another cluster's file of this layout, or none
		}
	}
	return files, nil
}

// ManagedFiles reads the service files in dir that pgsvc wrote for one of
// clusters (any cluster when clusters is empty), keyed by file name.
func ManagedFiles(dir string, clusters []string) (map[string][]byte, error) {
	all, err := cfgFiles(dir)
	if err != nil {
		return nil, err
	}
	names := slices.DeleteFunc(all, isFingerprintFile)
	return readManaged(dir, names, clusters)
}

// cfgFiles names the files HAProxy loads from dir (`-f dir`): regular
// files ending in .cfg, not hidden (pgsvc's temporaries are), sorted.
func cfgFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read config dir: %w", err)
	}
	var names []string
	for _, e := range entries {
		if n := e.Name(); e.Type().IsRegular() && !strings.HasPrefix(n, ".") && strings.HasSuffix(n, ".cfg") {
			names = append(names, n)
		}
	}
	return names, nil
}

func readManaged(dir string, names, clusters []string) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, name := range names {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read config dir: %w", err)
		}
		cluster, managed := ManagedCluster(data)
		if managed && (len(clusters) == 0 || slices.Contains(clusters, cluster)) {
			out[name] = data
		}
	}
	return out, nil
}

// structure is a file with everything HAProxy can change at runtime left
// out: slot admin state (disabled), weights, addresses, check ports. Two files
// with the same structure differ only in what pgsvc applies live.
func structure(data []byte) string {
	var b strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "server" {
			backup := strings.Contains(" "+line+" ", " backup ")
			// Checks on or off is structural: HAProxy cannot add or remove
			// them at runtime (it refuses check-port without them).
			checked := strings.Contains(" "+line+" ", " check ")
			fmt.Fprintf(&b, "server %s backup=%v ssl=%v check=%v\n", f[1], backup, strings.Contains(line, "check-ssl"), checked)
			continue
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

var stateWords = regexp.MustCompile(` weight \d+| disabled`)

// slotState is a file without comments, slot weights and `disabled` flags.
// When only those differ from a file HAProxy already accepted, the new file
// is valid by construction (weights are validated to 0-256), so the
// `haproxy -c` run (tens of milliseconds) is skipped on the hot path.
func slotState(data []byte) string {
	var b strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		b.WriteString(stateWords.ReplaceAllString(line, "") + "\n")
	}
	return b.String()
}

// mainConfig is the global/defaults file HAProxy loads before Dir: the one
// set, else haproxy.cfg in Dir (Pigsty before v4.5: everything in
// /etc/haproxy), else haproxy.cfg beside Dir (Pigsty v4.5 and Debian:
// /etc/haproxy/haproxy.cfg with /etc/haproxy/conf.d).
func (c *ConfigDir) mainConfig() string {
	if c.MainConfig != "" {
		return c.MainConfig
	}
	for _, p := range []string{filepath.Join(c.Dir, "haproxy.cfg"), filepath.Join(filepath.Dir(filepath.Clean(c.Dir)), "haproxy.cfg")} {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p
		}
	}
	return ""
}

// MainConfigFile is the global/defaults file checked with the service files
// ("" when there is none), for the startup log.
func (c *ConfigDir) MainConfigFile() string { return c.mainConfig() }

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " | ")), " ")
}

// LineDiff lists the lines that differ between two files, in order: "-" for
// a line only in old, "+" for a line only in new (a longest-common-
// subsequence diff without context; service files are a few dozen lines).
func LineDiff(old, new []byte) []string {
	a, b := splitLines(old), splitLines(new)
	// lcs[i][j] is the LCS length of a[i:] and b[j:].
	lcs := make([][]int, len(a)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out []string
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && a[i] == b[j]:
			i, j = i+1, j+1
		case i < len(a) && (j == len(b) || lcs[i+1][j] >= lcs[i][j+1]):
			out = append(out, "-"+a[i])
			i++
		default:
			out = append(out, "+"+b[j])
			j++
		}
	}
	return out
}

func splitLines(data []byte) []string {
	if len(data) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}
