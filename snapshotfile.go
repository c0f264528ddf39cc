package activeusers

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// SaveFile writes a snapshot to path atomically: to a temporary file in the
// same folder (path + ".tmp-" and a random suffix), synced to disk, renamed
// over path, and the folder synced. A crash at any moment leaves either the old
// snapshot or the new one at path, never a torn file; a crash can leave the
// temporary file behind, which Persist removes when it starts. A new file gets
// mode 0600, since a snapshot tells who was active when to anyone who can list
// candidate ids; an existing file keeps its mode.
func (t *Tracker) SaveFile(path string) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, base+tmpInfix+"*")
	if err != nil {
		return fmt.Errorf("activeusers: saving snapshot: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			err = fmt.Errorf("activeusers: saving snapshot to %s: %w", path, err)
		}
	}()
	if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() {
		if err := f.Chmod(fi.Mode().Perm()); err != nil {
			return err
		}
	}
	if _, err = t.WriteTo(f); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
}

// tmpInfix separates a snapshot's name from the random suffix of its
// temporary files.
const tmpInfix = ".tmp-"

// removeStaleTemps deletes the temporary files that saves to path left
// behind when the process died between creating and renaming them.
func removeStaleTemps(path string) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // the save that follows says what is wrong
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if e.Type().IsRegular() && strings.HasPrefix(e.Name(), base+tmpInfix) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// LoadFile merges the snapshot at path into the tracker, as ReadFrom does. A
// missing file is not an error (the first start has none); anything else that
// goes wrong leaves the tracker as it was and returns an error naming path.
func (t *Tracker) LoadFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("activeusers: loading snapshot: %w", err)
	}
	defer f.Close()
	if _, err := t.ReadFrom(f); err != nil {
		return fmt.Errorf("activeusers: loading snapshot %s: %w", path, err)
	}
	return nil
}

// Persister keeps a tracker's snapshot file fresh: it loads the file when
// started, saves every interval, and saves once more on Close, so a crash
// loses at most one interval of activity and a clean stop loses none.
type Persister struct {
	t     *Tracker
	path  string
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
	mu    sync.Mutex
	err   error // the last save's error, nil once a save succeeds
	saves int
}

// Persist loads the snapshot at path into t (a missing file is fine), removes
// temporary files that an earlier process killed mid-save left beside it,
// saves once to prove it can, and starts a goroutine that saves t to path
// every interval. It returns an error, and starts nothing, if the file exists
// but cannot be loaded (a corrupt snapshot should be looked at, not silently
// overwritten) or if it cannot save there (a missing or read-only folder, a
// full disk): better to refuse to start than to run for days saving nothing.
// Call Close to stop saving; it makes a final save. One Persister per path:
// two would remove each other's temporary files.
func Persist(t *Tracker, path string, every time.Duration) (*Persister, error) {
	if every <= 0 {
		return nil, fmt.Errorf("activeusers.Persist: the interval must be positive, not %v", every)
	}
	if err := t.LoadFile(path); err != nil {
		return nil, err
	}
	if err := removeStaleTemps(path); err != nil {
		return nil, fmt.Errorf("activeusers.Persist: removing temporary files: %w", err)
	}
	p := &Persister{t: t, path: path, stop: make(chan struct{}), done: make(chan struct{})}
	if err := p.save(); err != nil {
		return nil, fmt.Errorf("activeusers.Persist: cannot save: %w", err)
	}
	go p.loop(every)
	return p, nil
}

func (p *Persister) loop(every time.Duration) {
	defer close(p.done)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-tick.C:
			p.save()
		}
	}
}

func (p *Persister) save() error {
	err := p.t.SaveFile(p.path)
	p.mu.Lock()
	p.err = err
	if err == nil {
		p.saves++
	}
	p.mu.Unlock()
	return err
}

// Err returns the error of the latest periodic save, or nil if it succeeded.
// A failed save leaves the previous snapshot in place and is retried at the
// next interval.
func (p *Persister) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Close stops the periodic saves and saves once more, returning that save's
// error. Later calls return nil and do nothing.
func (p *Persister) Close() error {
	var err error
	p.once.Do(func() {
		close(p.stop)
		<-p.done
		err = p.save()
	})
	return err
}
