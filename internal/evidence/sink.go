package evidence

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Sink is where a collection's files go. Names are slash-separated paths
// relative to the sink.
type Sink interface {
	// Put streams r into the object name and returns the number of bytes
	// stored. It never overwrites an existing object, and leaves nothing
	// behind when it fails.
	Put(ctx context.Context, name string, r io.Reader) (int64, error)
	// Open reads an object. A missing object gives an error that matches
	// fs.ErrNotExist.
	Open(ctx context.Context, name string) (io.ReadCloser, error)
	// List returns the names of every object under the sink, sorted.
	List(ctx context.Context) ([]string, error)
	// Sub returns the sink rooted at dir below this one.
	Sub(dir string) Sink
	// Check tells whether the sink can be written to, as far as that can be
	// known without writing evidence.
	Check(ctx context.Context) error
	// String says where the sink is, without any credential.
	String() string
}

// cleanName turns a name into a relative slash path that cannot leave the
// sink ("../x" becomes "x").
func cleanName(name string) (string, error) {
	c := strings.TrimPrefix(path.Clean("/"+name), "/")
	if c == "" {
		return "", fmt.Errorf("empty object name %q", name)
	}
	return c, nil
}

// Dir is a sink in a local directory. Files are created 0600 and
// directories 0700: evidence holds logs, shell histories and manifests
// that only the responder should read.
type Dir struct {
	root string
}

// NewDir returns a sink rooted at the directory root, which is created on
// first write.
func NewDir(root string) (*Dir, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("evidence directory %s: %w", root, err)
	}
	return &Dir{root: abs}, nil
}

func (d *Dir) path(name string) (string, error) {
	c, err := cleanName(name)
	if err != nil {
		return "", err
	}
	return filepath.Join(d.root, filepath.FromSlash(c)), nil
}

// Put writes r to a new file; it fails if the file exists.
func (d *Dir) Put(ctx context.Context, name string, r io.Reader) (int64, error) {
	p, err := d.path(name)
	if err != nil {
		return 0, err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return 0, fmt.Errorf("create directory for %s: %w", name, err)
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, fmt.Errorf("create %s: %w", p, err)
	}
	n, err := io.Copy(f, ctxReader{ctx: ctx, r: r})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(p)
		return 0, fmt.Errorf("write %s: %w", p, err)
	}
	return n, nil
}

// Open opens a file for reading.
func (d *Dir) Open(_ context.Context, name string) (io.ReadCloser, error) {
	p, err := d.path(name)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// List walks the directory and returns every regular file, and every
// symlink or other non-directory entry, as a slash path.
func (d *Dir) List(_ context.Context) ([]string, error) {
	var names []string
	err := filepath.WalkDir(d.root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(d.root, p)
		if err != nil {
			return err
		}
		names = append(names, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", d.root, err)
	}
	sort.Strings(names)
	return names, nil
}

// Sub returns the directory dir below this one.
func (d *Dir) Sub(dir string) Sink {
	c, err := cleanName(dir)
	if err != nil {
		return d
	}
	return &Dir{root: filepath.Join(d.root, filepath.FromSlash(c))}
}

// Check creates the directory if needed and proves that a file can be
// created in it.
func (d *Dir) Check(_ context.Context) error {
	if err := os.MkdirAll(d.root, 0o700); err != nil {
		return fmt.Errorf("evidence directory %s cannot be created: %w", d.root, unwrapPath(err))
	}
	f, err := os.CreateTemp(d.root, ".kdfir-check-*")
	if err != nil {
		return fmt.Errorf("evidence directory %s is not writable: %w", d.root, unwrapPath(err))
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// String is the directory's absolute path.
func (d *Dir) String() string { return d.root }

// unwrapPath drops the *PathError wrapper, whose path the caller names
// already.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// ctxReader stops a copy when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
