package testenv

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// Azurite's published development account.
const (
	AzuriteAccount = "devstoreaccount1"
	AzuriteKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// Azurite is a running Azure Blob emulator.
type Azurite struct {
	// URL is the account's blob endpoint, http://127.0.0.1:PORT/devstoreaccount1.
	URL  string
	proc *process
	dir  string
}

// StartAzurite runs azurite-blob on a free port with its data in a fresh
// directory.
func StartAzurite(ctx context.Context) (*Azurite, error) {
	bin, err := binary("azurite-blob")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "kdfir-azurite-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	p, err := startProcess(dir, "azurite", nil, bin,
		"--blobHost", "127.0.0.1", "--blobPort", fmt.Sprint(port),
		"--location", filepath.Join(dir, "data"), "--skipApiVersionCheck", "--silent", "--loose")
	if err != nil {
		return nil, err
	}
	a := &Azurite{URL: fmt.Sprintf("http://127.0.0.1:%d/%s", port, AzuriteAccount), proc: p, dir: dir}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if p.exited() {
			a.Stop()
			return nil, fmt.Errorf("azurite exited during start-up:\n%s", p.tail(20))
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, a.URL+"?comp=list", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			return a, nil
		}
		if time.Now().After(deadline) {
			a.Stop()
			return nil, fmt.Errorf("azurite not ready after 30s:\n%s", p.tail(20))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop ends Azurite and removes its data.
func (a *Azurite) Stop() {
	a.proc.stop()
	_ = os.RemoveAll(a.dir)
}

// Logs returns the tail of Azurite's log.
func (a *Azurite) Logs(n int) string { return a.proc.tail(n) }
