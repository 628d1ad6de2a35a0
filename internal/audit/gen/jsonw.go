package gen

import (
	"strconv"
	"time"
)

// Small appenders for the RequestResponse bodies. They write JSON by hand
// into a reused buffer: generation must stay above 100,000 events/s.

const hexDigits = "0123456789abcdef"

// appendUUID appends a random version-4 UUID, unquoted.
func (g *Generator) appendUUID(b []byte) []byte {
	x, y := g.rng.Uint64(), g.rng.Uint64()
	for i := 0; i < 36; i++ {
		switch i {
		case 8, 13, 18, 23:
			b = append(b, '-')
			continue
		case 14:
			b = append(b, '4')
			continue
		}
		if i < 18 {
			b = append(b, hexDigits[x&15])
			x >>= 4
		} else {
			b = append(b, hexDigits[y&15])
			y >>= 4
		}
	}
	return b
}

// appendHex appends n random hex digits.
func (g *Generator) appendHex(b []byte, n int) []byte {
	var x uint64
	for i := 0; i < n; i++ {
		if i%16 == 0 {
			x = g.rng.Uint64()
		}
		b = append(b, hexDigits[x&15])
		x >>= 4
	}
	return b
}

// appendB64 appends n random base64 characters.
func (g *Generator) appendB64(b []byte, n int) []byte {
	const chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	var x uint64
	for i := 0; i < n; i++ {
		if i%10 == 0 {
			x = g.rng.Uint64()
		}
		b = append(b, chars[x&63])
		x >>= 6
	}
	return b
}

// appendSuffix appends n characters of a generated-name suffix.
func (g *Generator) appendSuffix(b []byte, n int) []byte {
	const chars = "bcdfghjklmnpqrstvwxz2456789"
	x := g.rng.Uint64()
	for i := 0; i < n; i++ {
		if i%12 == 11 {
			x = g.rng.Uint64()
		}
		b = append(b, chars[x%27])
		x /= 27
	}
	return b
}

// appendTime appends t as a quoted RFC 3339 time in UTC, with microseconds
// when micro is set (the form of MicroTime fields and audit stamps).
func appendTime(b []byte, t time.Time, micro bool) []byte {
	t = t.UTC()
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	b = append(b, '"')
	b = append(b, byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-')
	b = append2(b, int(mo))
	b = append(b, '-')
	b = append2(b, d)
	b = append(b, 'T')
	b = append2(b, h)
	b = append(b, ':')
	b = append2(b, mi)
	b = append(b, ':')
	b = append2(b, s)
	if micro {
		us := t.Nanosecond() / 1000
		b = append(b, '.')
		for div := 100000; div > 0; div /= 10 {
			b = append(b, byte('0'+us/div%10))
		}
	}
	return append(b, 'Z', '"')
}

func append2(b []byte, v int) []byte { return append(b, byte('0'+v/10), byte('0'+v%10)) }

// w is a JSON writer over one buffer.
type w struct {
	b []byte
	g *Generator
}

func (j *w) raw(s string)    { j.b = append(j.b, s...) }
func (j *w) str(s string)    { j.b = appendQuoted(j.b, s) }
func (j *w) num(n int)       { j.b = strconv.AppendInt(j.b, int64(n), 10) }
func (j *w) ts(t time.Time)  { j.b = appendTime(j.b, t, false) }
func (j *w) mts(t time.Time) { j.b = appendTime(j.b, t, true) }

// kv writes "k":"v".
func (j *w) kv(k, v string) {
	j.b = append(j.b, '"')
	j.b = append(j.b, k...)
	j.b = append(j.b, '"', ':')
	j.b = appendQuoted(j.b, v)
}

// uid writes a quoted random UUID and returns it.
func (j *w) uid() string {
	j.b = append(j.b, '"')
	start := len(j.b)
	j.b = j.g.appendUUID(j.b)
	s := string(j.b[start:])
	j.b = append(j.b, '"')
	return s
}

// rv writes a quoted resourceVersion, fresh and rising.
func (j *w) rv() {
	j.g.rv += uint64(1 + j.g.pick(64))
	j.b = append(j.b, '"')
	j.b = strconv.AppendUint(j.b, j.g.rv, 10)
	j.b = append(j.b, '"')
}

// ip writes a quoted pod IP.
func (j *w) ip() {
	j.b = append(j.b, `"10.244.`...)
	j.b = strconv.AppendInt(j.b, int64(j.g.pick(6)), 10)
	j.b = append(j.b, '.')
	j.b = strconv.AppendInt(j.b, int64(2+j.g.pick(250)), 10)
	j.b = append(j.b, '"')
}
