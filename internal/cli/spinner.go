package cli

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"
)

// spinnerDelay is how long a query runs before the spinner shows.
const spinnerDelay = time.Second

// spinner shows, on a terminal, that a long query is running: its elapsed
// time and the rows read so far. It clears itself before the first output.
type spinner struct {
	w       io.Writer
	mu      sync.Mutex
	count   func() int64
	shown   bool
	stopped bool
	done    chan struct{}
	wg      sync.WaitGroup
}

// startSpinner starts a spinner on w when w is a terminal; otherwise the
// spinner does nothing.
func startSpinner(w io.Writer, start time.Time) *spinner {
	s := &spinner{w: w, done: make(chan struct{})}
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		s.stopped = true
		return s
	}
	s.wg.Add(1)
	go s.run(start)
	return s
}

var spinFrames = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

func (s *spinner) run(start time.Time) {
	defer s.wg.Done()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		if time.Since(start) < spinnerDelay {
			continue
		}
		s.mu.Lock()
		if !s.stopped {
			var rows int64
			if s.count != nil {
				rows = s.count()
			}
			fmt.Fprintf(s.w, "\r\033[K%s running %.1fs, %d rows read", spinFrames[i%len(spinFrames)], time.Since(start).Seconds(), rows)
			s.shown = true
		}
		s.mu.Unlock()
	}
}

// watch sets the function that counts the rows read.
func (s *spinner) watch(count func() int64) {
	s.mu.Lock()
	s.count = count
	s.mu.Unlock()
}

// clear removes the spinner's line and stops it.
func (s *spinner) stop() {
	s.mu.Lock()
	if s.shown {
		fmt.Fprint(s.w, "\r\033[K")
		s.shown = false
	}
	already := s.stopped
	s.stopped = true
	s.mu.Unlock()
	if !already {
		close(s.done)
		s.wg.Wait()
	}
}

// spinWriter stops the spinner before the first byte of output.
type spinWriter struct {
	w    io.Writer
	spin *spinner
	on   bool
}

func (sw *spinWriter) Write(p []byte) (int, error) {
	if !sw.on {
		sw.on = true
		sw.spin.stop()
	}
	return sw.w.Write(p)
}
