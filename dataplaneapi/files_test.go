package dataplaneapi

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/pgsvc/pgsvc/reconcile"
)

// dirChanges records, as the kernel reports them (inotify), the files
// renamed into dir or removed from it, in order; pgsvc's hidden
// temporaries and backups are left out. read drains what happened so far.
func dirChanges(t *testing.T, dir string) (read func() []string) {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	require.NoError(t, err)
	t.Cleanup(func() { unix.Close(fd) })
	_, err = unix.InotifyAddWatch(fd, dir, unix.IN_MOVED_TO|unix.IN_DELETE)
	require.NoError(t, err)
	return func() []string {
		var out []string
		buf := make([]byte, 64*1024)
		for {
			n, err := unix.Read(fd, buf)
			if errors.Is(err, unix.EAGAIN) {
				return out
			}
			require.NoError(t, err)
			for off := 0; off+unix.SizeofInotifyEvent <= n; {
				ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
				name := string(bytes.TrimRight(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)], "\x00"))
				off += unix.SizeofInotifyEvent + int(ev.Len)
				if strings.HasPrefix(name, ".") {
					continue
				}
				op := "installed "
				if ev.Mask&unix.IN_DELETE != 0 {
					op = "removed "
				}
				out = append(out, op+name)
			}
		}
	}
}

// Pins: the fingerprint file was renamed into place in name order, before
// service files that sort after it (and before the removals): an external
// reload in between loaded the new fingerprint with an old service file,
// and pgsvc then believed HAProxy ran the files. It goes last.
func TestFingerprintInstalledLast(t *testing.T) {
	c, s := persistLab(t, &CommandReloader{Argv: []string{"true"}})
	svc := func(name string, port int) reconcile.Service {
		v := *s
		v.Name, v.Port = name, port
		return v
	}
	// pgx-… and pgz-… sort after pgsvc-fingerprint.cfg.
	_, err := c.Persist(t.Context(), []reconcile.Service{svc("pg-test-replica", 15434), svc("pgz-old", 15435)}, true, false)
	require.NoError(t, err)

	tests := []struct {
		name  string
		write func() error
		want  []string
	}{
		{"a full pass: a file added, one removed", func() error {
			_, err := c.Persist(t.Context(), []reconcile.Service{svc("pg-test-replica", 15434), svc("pgx-new", 15436)}, true, false)
			return err
		}, []string{"installed pgx-new.cfg", "removed pgz-old.cfg", "installed pgsvc-fingerprint.cfg"}},
		{"WriteFiles (a restore)", func() error {
			_, err := WriteFiles(c.Dir, map[string][]byte{fingerprintPrefix + ".cfg": []byte("# restored\n"), "pgy.cfg": []byte("# restored\n")})
			return err
		}, []string{"installed pgy.cfg", "installed pgsvc-fingerprint.cfg"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			read := dirChanges(t, c.Dir)
			require.NoError(t, tc.write())
			assert.Equal(t, tc.want, read())
		})
	}
	_, err = os.Stat(filepath.Join(c.Dir, "pgz-old.cfg"))
	assert.True(t, os.IsNotExist(err))
}
