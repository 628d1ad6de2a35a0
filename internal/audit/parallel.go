package audit

import (
	"runtime"
	"sync"
)

// This file decodes JSON lines on every core: the reader cuts the input
// into chunks of lines, workers decode the chunks, and the events come out
// in input order.

// chunkBytes is about how much input one chunk holds.
const chunkBytes = 1 << 20

// lineChunk is a run of lines, copied into one buffer that the events
// decoded from it keep (Event.Raw points into it).
type lineChunk struct {
	buf   []byte
	lines []lineRef
	out   chan chunkResult
}

type lineRef struct {
	start, end int
	no         int
	tooLong    bool
}

type chunkResult struct {
	events []Event
	stats  Stats
}

// parallelLines decodes JSON lines with one worker per CPU. It returns
// io.EOF at the end of the input, like the sequential loop.
func (d *decoder) parallelLines() error {
	workers := runtime.GOMAXPROCS(0)
	jobs := make(chan *lineChunk, workers)
	order := make(chan *lineChunk, 2*workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range jobs {
				c.out <- decodeChunk(c, d.opts)
			}
		}()
	}
	stop := make(chan struct{})
	readErr := make(chan error, 1)
	go func() {
		defer close(order)
		defer close(jobs)
		readErr <- d.readChunks(jobs, order, stop)
	}()
	var emitErr error
	for c := range order {
		res := <-c.out
		if emitErr != nil {
			continue // drain
		}
		d.stats.merge(&res.stats)
		for _, e := range res.events {
			if err := d.emit(e); err != nil {
				emitErr = err
				close(stop)
				break
			}
		}
	}
	wg.Wait()
	if emitErr != nil {
		return emitErr
	}
	return <-readErr
}

// readChunks cuts the input into chunks and queues each for a worker and,
// in order, for the collector.
func (d *decoder) readChunks(jobs, order chan<- *lineChunk, stop <-chan struct{}) error {
	c := &lineChunk{}
	send := func() bool {
		c.out = make(chan chunkResult, 1)
		select {
		case order <- c:
		case <-stop:
			return false
		}
		select {
		case jobs <- c:
		case <-stop:
			return false
		}
		c = &lineChunk{buf: make([]byte, 0, chunkBytes+chunkBytes/4)}
		return true
	}
	c.buf = make([]byte, 0, chunkBytes+chunkBytes/4)
	for {
		l, tooLong, err := d.readLine()
		if err != nil {
			if len(c.lines) > 0 && !send() {
				return nil
			}
			return err
		}
		start := len(c.buf)
		if !tooLong {
			c.buf = append(c.buf, l...)
		}
		c.lines = append(c.lines, lineRef{start: start, end: len(c.buf), no: d.line, tooLong: tooLong})
		if len(c.buf) >= chunkBytes && !send() {
			return nil
		}
	}
}

func decodeChunk(c *lineChunk, opts Options) chunkResult {
	var res chunkResult
	sub := &decoder{opts: opts, emit: func(e Event) error {
		res.events = append(res.events, e)
		return nil
	}}
	for _, l := range c.lines {
		sub.oneLineOwned(c.buf[l.start:l.end:l.end], l.no, l.tooLong)
	}
	res.stats = sub.stats
	return res
}

// merge adds the counts and problems of a later part of the input.
func (s *Stats) merge(o *Stats) {
	s.Events += o.Events
	s.Rejected += o.Rejected
	s.Skipped += o.Skipped
	for _, p := range o.Problems {
		if len(s.Problems) >= MaxProblems {
			break
		}
		s.Problems = append(s.Problems, p)
	}
}
