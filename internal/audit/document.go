package audit

import (
	"errors"
	"fmt"
	"io"
)

// This file frames JSON documents (pretty-printed or concatenated values)
// without reading them whole: a top-level array, or a top-level object's
// "records" or "items" array, is handed on element by element.

var errTooLarge = fmt.Errorf("JSON value larger than %d bytes", MaxValueSize)

func (d *decoder) readByte() (byte, error) {
	c, err := d.br.ReadByte()
	if err == nil && c == '\n' {
		d.line++
	}
	return c, err
}

// peekNonWS skips whitespace, appending it to buf when buf is not nil, and
// returns the next byte without consuming it.
func (d *decoder) peekNonWS(buf *[]byte) (byte, error) {
	for {
		b, err := d.br.Peek(1)
		if err != nil {
			return 0, err
		}
		switch b[0] {
		case ' ', '\t', '\r', '\n':
			_, _ = d.readByte()
			if buf != nil {
				*buf = append(*buf, b[0])
			}
		default:
			return b[0], nil
		}
	}
}

func (d *decoder) document() error {
	for d.err == nil {
		c, err := d.peekNonWS(nil)
		if err != nil {
			return err
		}
		start := d.line + 1
		switch c {
		case '{':
			d.topObject(start)
		case '[':
			_, _ = d.readByte()
			d.stream(start)
		default:
			d.stats.problem(start, false, "unexpected %q outside a JSON value", c)
			d.resync()
		}
	}
	return d.err
}

// resync drops input up to the next line that starts with '{' or '['.
func (d *decoder) resync() {
	for {
		for {
			c, err := d.readByte()
			if err != nil {
				return
			}
			if c == '\n' {
				break
			}
		}
		b, err := d.br.Peek(1)
		if err != nil || b[0] == '{' || b[0] == '[' {
			return
		}
	}
}

// fail reports a framing error at line and resynchronises.
func (d *decoder) fail(line int, err error) {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		d.stats.problem(line, false, "truncated JSON")
		return
	}
	d.stats.problem(line, false, "%v", err)
	d.resync()
}

// stream hands on the elements of an array whose '[' was consumed.
func (d *decoder) stream(start int) bool {
	for d.err == nil {
		c, err := d.peekNonWS(nil)
		if err != nil {
			d.fail(start, err)
			return false
		}
		switch c {
		case ']':
			_, _ = d.readByte()
			return true
		case ',':
			_, _ = d.readByte()
			continue
		}
		line := d.line + 1
		buf, err := d.readValue(d.lbuf[:0])
		d.lbuf = buf[:0]
		if err != nil {
			d.fail(line, err)
			return false
		}
		d.value(buf, line, true)
	}
	return false
}

// topObject reads one top-level object. A "records" or "items" array in
// it is streamed; otherwise the object is handled as one value.
func (d *decoder) topObject(start int) {
	_, _ = d.readByte()
	buf := []byte{'{'}
	streamed := false
	for {
		c, err := d.peekNonWS(&buf)
		if err != nil {
			d.fail(start, err)
			return
		}
		switch c {
		case '}':
			_, _ = d.readByte()
			buf = append(buf, '}')
			if !streamed {
				d.value(buf, start, false)
			}
			return
		case ',':
			_, _ = d.readByte()
			buf = append(buf, ',')
			continue
		case '"':
		default:
			d.fail(start, fmt.Errorf("invalid JSON: unexpected %q in object", c))
			return
		}
		n := len(buf)
		if buf, err = d.readString(buf); err != nil {
			d.fail(start, err)
			return
		}
		key := decodeString(buf[n:])
		if c, err = d.peekNonWS(&buf); err != nil || c != ':' {
			d.fail(start, orErr(err, "invalid JSON: missing ':' after key"))
			return
		}
		_, _ = d.readByte()
		buf = append(buf, ':')
		if c, err = d.peekNonWS(&buf); err != nil {
			d.fail(start, err)
			return
		}
		if c == '[' && (key == "records" || key == "items") {
			_, _ = d.readByte()
			if !d.stream(d.line + 1) {
				return
			}
			buf = append(buf, '[', ']')
			streamed = true
			continue
		}
		if buf, err = d.readValue(buf); err != nil {
			d.fail(start, err)
			return
		}
	}
}

func orErr(err error, msg string) error {
	if err != nil {
		return err
	}
	return errors.New(msg)
}

// readString appends a JSON string (the next byte is '"') to buf.
func (d *decoder) readString(buf []byte) ([]byte, error) {
	c, err := d.readByte()
	if err != nil {
		return buf, err
	}
	buf = append(buf, c)
	esc := false
	for {
		c, err := d.readByte()
		if err != nil {
			return buf, err
		}
		buf = append(buf, c)
		switch {
		case esc:
			esc = false
		case c == '\\':
			esc = true
		case c == '"':
			return buf, nil
		}
		if len(buf) > MaxValueSize {
			return buf, errTooLarge
		}
	}
}

// readValue appends the next JSON value to buf, matching brackets and
// strings only; json.Valid checks it later.
func (d *decoder) readValue(buf []byte) ([]byte, error) {
	c, err := d.peekNonWS(&buf)
	if err != nil {
		return buf, err
	}
	switch c {
	case '"':
		return d.readString(buf)
	case '{', '[':
		depth := 0
		for {
			b, err := d.br.Peek(1)
			if err != nil {
				return buf, err
			}
			if b[0] == '"' {
				if buf, err = d.readString(buf); err != nil {
					return buf, err
				}
				continue
			}
			c, _ := d.readByte()
			buf = append(buf, c)
			switch c {
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return buf, nil
				}
			}
			if len(buf) > MaxValueSize {
				return buf, errTooLarge
			}
		}
	case '}', ']', ',', ':':
		_, _ = d.readByte()
		return buf, fmt.Errorf("invalid JSON: unexpected %q", c)
	default:
		for {
			b, err := d.br.Peek(1)
			if err != nil {
				if errors.Is(err, io.EOF) {
					return buf, nil
				}
				return buf, err
			}
			switch b[0] {
			case ',', '}', ']', ' ', '\t', '\r', '\n':
				return buf, nil
			}
			c, _ := d.readByte()
			buf = append(buf, c)
			if len(buf) > MaxValueSize {
				return buf, errTooLarge
			}
		}
	}
}
