package dataplaneapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"sort"
	"strings"
)

// HAProxy 2.6 reports no hash of the configuration it runs, and a proxy's
// `description` is not in `show stat`. What it does report is its process
// environment (`show env`), which a `global` section's `setenv` sets when
// the configuration is loaded. So pgsvc writes, beside the service files,
// one file holding a fingerprint of their structure (everything HAProxy
// cannot change at runtime) as an environment variable. Comparing the
// variable HAProxy reports with the fingerprint of the files on disk tells,
// on every pass, whether HAProxy runs what the files say: a reload that
// failed or never happened, a restart from other files, or a file edited
// and reloaded by hand all show up, whoever reloaded.

// fingerprintPrefix starts the fingerprint file's name; such files are not
// service files (never rendered, never stale).
const fingerprintPrefix = "pgsvc-fingerprint"

// fingerprintOwner names the fingerprint file and variable of the pgsvc
// that owns clusters (all when empty): pgsvc instances sharing one HAProxy
// with --cluster each keep their own.
func fingerprintOwner(clusters []string) (file, env string) {
	if len(clusters) == 0 {
		return fingerprintPrefix + ".cfg", "PGSVC_FINGERPRINT"
	}
	sorted := append([]string(nil), clusters...)
	sort.Strings(sorted)
	sum := sha256.Sum256([]byte(strings.Join(sorted, "\n")))
	h := hex.EncodeToString(sum[:4])
	return fingerprintPrefix + "-" + h + ".cfg", "PGSVC_FINGERPRINT_" + strings.ToUpper(h)
}

func isFingerprintFile(name string) bool { return strings.HasPrefix(name, fingerprintPrefix) }

// structHash hashes a file's structure: the fingerprint then hashes a few
// bytes per file, not every file's text, on each pass.
func structHash(data []byte) string {
	sum := sha256.Sum256([]byte(structure(data)))
	return string(sum[:])
}

// fingerprintOf hashes the files' structure hashes, in name order.
func fingerprintOf(structs map[string]string) string {
	names := make([]string, 0, len(structs))
	for n := range structs {
		names = append(names, n)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		h.Write([]byte(n))
		h.Write([]byte{0})
		h.Write([]byte(structs[n]))
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

func fingerprintFileContent(env, fp, stateFile string) []byte {
	var state string
	if stateFile != "" {
		state = "    # written by pgsvc before each reload it makes, emptied after\n" +
			"    server-state-file " + stateFile + "\n"
	}
	return []byte(fmt.Sprintf("# config fingerprint (managed by pgsvc: edits are overwritten)\n"+
		"# cluster -\n"+
		"# HAProxy reports it in `show env`; pgsvc compares it with the service files to\n"+
		"# see whether HAProxy runs what they say.\n"+
		"global\n    setenv %s %s\n%s", env, fp, state))
}

// WriteFingerprint writes the fingerprint file of the managed service files
// in dir (of clusters, all when empty), declaring stateFile ("": none) as
// HAProxy's server-state-file, and creates that file empty if it is
// missing: what `pgsvc render --out` leaves and `pgsvc run` expects.
func WriteFingerprint(dir string, clusters []string, stateFile string) error {
	c := &ConfigDir{Dir: dir, Clusters: clusters, StateFile: stateFile}
	fp, env, err := c.Fingerprint()
	if err != nil {
		return err
	}
	if stateFile != "" {
		if _, err := os.Stat(stateFile); os.IsNotExist(err) {
			if err := c.writeState(nil); err != nil {
				return err
			}
		}
	}
	name, _ := fingerprintOwner(clusters)
	_, err = WriteFiles(dir, map[string][]byte{name: fingerprintFileContent(env, fp, stateFile)})
	return err
}

// RunningFingerprint reads the fingerprint HAProxy loaded ("" when it
// loaded none). Over Batch, not Execute: a value cut short by
// client-native's transport (it ends a reply at a read error and reports
// success) would read as drift, and drift is a reload.
func (r *Runtime) RunningFingerprint(ctx context.Context, env string) (string, error) {
	out, err := r.Show(ctx, "show env "+env)
	if err != nil {
		return "", err
	}
	out = strings.TrimSpace(out)
	if v, ok := strings.CutPrefix(out, env+"="); ok {
		return v, nil
	}
	if strings.HasSuffix(out, "Variable not found") { // 2.6: "[3]: Variable not found"
		return "", nil
	}
	return "", fmt.Errorf("show env %s: unexpected reply %q", env, firstLine(out))
}
