package dataplaneapi

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"golang.org/x/sys/unix"
)

// WriteFiles writes each file into dir atomically: every file is first
// written under a temporary name, flushed, and only when all of them are
// complete are they renamed into place, a fingerprint file last. Files
// whose content is already in place are left untouched. On any failure the
// temporaries are removed and no file in dir has changed. It returns the
// names of the files it replaced.
func WriteFiles(dir string, files map[string][]byte) ([]string, error) {
	names := make([]string, 0, len(files))
	for n, data := range files {
		if old, err := os.ReadFile(filepath.Join(dir, n)); err == nil && bytes.Equal(old, data) {
			continue
		}
		names = append(names, n)
	}
	if len(names) == 0 {
		return nil, nil
	}
	// The fingerprint file goes last: it says the other files are in place.
	sort.Slice(names, func(i, j int) bool {
		if fi, fj := isFingerprintFile(names[i]), isFingerprintFile(names[j]); fi != fj {
			return fj
		}
		return names[i] < names[j]
	})
	temps := make(map[string]string, len(names))
	cleanup := func() {
		for _, t := range temps {
			os.Remove(t)
		}
	}
	// A few files (a switchover flips `disabled` in a handful) are each
	// fsynced; a bulk write (thousands at start or after an inventory
	// change) takes one filesystem-wide flush instead. syncfs flushes the
	// whole filesystem, PGDATA included on a DB node: never on the hot path.
	bulk := len(names) > bulkSync
	if err := writeTemps(dir, names, files, temps, !bulk); err != nil {
		cleanup()
		return nil, err
	}
	if bulk {
		if err := syncFS(dir); err != nil {
			cleanup()
			return nil, err
		}
	}
	if err := install(dir, names, temps); err != nil {
		cleanup()
		return nil, err
	}
	return names, syncDir(dir)
}

// bulkSync is the number of files above which one syncfs replaces an
// fsync per file.
const bulkSync = 64

// install renames the temporaries into place. The files they replace are
// kept as hard links until every rename succeeded, so a failure part-way
// puts the earlier ones back: either all files change or none.
func install(dir string, names []string, temps map[string]string) error {
	backups := map[string]string{}
	defer func() {
		for _, b := range backups {
			os.Remove(b)
		}
	}()
	for _, n := range names {
		target := filepath.Join(dir, n)
		b := filepath.Join(dir, "."+n+".old")
		os.Remove(b)
		if err := os.Link(target, b); err == nil {
			backups[n] = b
		} else if !os.IsNotExist(err) {
			return fmt.Errorf("keep the previous %s: %w", target, err)
		}
	}
	var installed []string
	for _, n := range names {
		target := filepath.Join(dir, n)
		if err := os.Rename(temps[n], target); err != nil {
			for _, done := range installed {
				if b, ok := backups[done]; ok {
					os.Rename(b, filepath.Join(dir, done))
					delete(backups, done)
				} else {
					os.Remove(filepath.Join(dir, done))
				}
			}
			return fmt.Errorf("install %s (nothing changed): %w", target, err)
		}
		delete(temps, n)
		installed = append(installed, n)
	}
	return nil
}

// writeTemps writes the temporaries with a few workers: creating thousands
// of files is bound by filesystem latency, not CPU.
func writeTemps(dir string, names []string, files map[string][]byte, temps map[string]string, fsync bool) error {
	const workers = 8
	type result struct {
		name, temp string
		err        error
	}
	jobs := make(chan string)
	results := make(chan result)
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range jobs {
				t, err := writeTemp(dir, n, files[n], fsync)
				results <- result{n, t, err}
			}
		}()
	}
	go func() {
		for _, n := range names {
			jobs <- n
		}
		close(jobs)
		wg.Wait()
		close(results)
	}()
	var errs []error
	for r := range results {
		if r.err != nil {
			errs = append(errs, r.err)
			continue
		}
		temps[r.name] = r.temp
	}
	return errors.Join(errs...)
}

func writeTemp(dir, name string, data []byte, fsync bool) (string, error) {
	f, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("write %s: %w", filepath.Join(dir, name), err)
	}
	_, werr := f.Write(data)
	var serr error
	if fsync && werr == nil {
		serr = f.Sync()
	}
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("write %s: %w", filepath.Join(dir, name), err)
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("write %s: %w", filepath.Join(dir, name), err)
	}
	return f.Name(), nil
}

func syncFS(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
