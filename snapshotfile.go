package activeusers

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// SaveFile writes a snapshot to path atomically: to a temporary file in the
// same folder, synced to disk, renamed over path, and the folder synced. A
// crash at any moment leaves either the old snapshot or the new one at path,
// never a torn file.
func (t *Tracker) SaveFile(path string) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, base+".tmp-*")
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

// Persist loads the snapshot at path into t (a missing file is fine) and
// starts a goroutine that saves t to path every interval. It returns an error,
// and starts nothing, if the file exists but cannot be loaded: a corrupt
// snapshot should be looked at, not silently overwritten. Call Close to stop
// saving; it makes a final save.
func Persist(t *Tracker, path string, every time.Duration) (*Persister, error) {
	if every <= 0 {
		return nil, fmt.Errorf("activeusers.Persist: the interval must be positive, not %v", every)
	}
	if err := t.LoadFile(path); err != nil {
		return nil, err
	}
	p := &Persister{t: t, path: path, stop: make(chan struct{}), done: make(chan struct{})}
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
