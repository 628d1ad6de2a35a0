package store

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// spillDir makes the directory one open store spills to,
// path+".tmp"/PID-RANDOM, after removing those of processes that have
// ended (killed while spilling). Every open has its own: DuckDB numbers
// its spill files from 0 in every instance and deletes the ones it finds
// when it starts, so stores sharing a directory (readers beside each
// other or beside the writer) would overwrite or delete each other's.
// The directory is made now, so that no other process's Close removes
// the parent while this store is open; when it cannot be made (a
// read-only data directory), DuckDB reports that if a query needs to
// spill.
func spillDir(path string) string {
	root := path + ".tmp"
	sweepSpill(root)
	var b [4]byte
	_, _ = rand.Read(b[:])
	dir := filepath.Join(root, strconv.Itoa(os.Getpid())+"-"+hex.EncodeToString(b[:]))
	for range 3 { // another process's Close may remove an empty root in between
		if os.MkdirAll(dir, 0o700) == nil {
			break
		}
	}
	return dir
}

// sweepSpill removes the spill directories of processes that have ended,
// and root itself when nothing is left in it.
func sweepSpill(root string) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return
	}
	for _, e := range ents {
		pid, _, ok := strings.Cut(e.Name(), "-")
		n, err := strconv.Atoi(pid)
		if !ok || err != nil || n <= 0 || n == os.Getpid() || alive(n) {
			continue
		}
		_ = os.RemoveAll(filepath.Join(root, e.Name()))
	}
}

// alive reports whether a process with this PID exists.
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
