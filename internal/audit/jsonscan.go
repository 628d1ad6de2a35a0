package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"unicode/utf8"

	segjson "github.com/segmentio/encoding/json"
)

// This file holds a tiny allocation-free walker over JSON that has already
// been checked with validJSON. It gives exact (case-sensitive) key
// matching, which encoding/json's struct decoding does not, so that the hot
// fields always agree with the map[string]any the table views build.

var errNotObject = errors.New("not a JSON object")

// validJSON reports whether b is one JSON value, as encoding/json's Valid
// does (invalid UTF-8 in strings included), with segmentio/encoding's
// validator: five times as fast (1.4 GB/s against 261 MB/s on generated
// RequestResponse events), and the decoder checks every event with it.
// encoding/json also refuses nesting deeper than 10,000, which only a
// value with more than 10,000 brackets can reach; those it checks itself.
// FuzzValid holds the two to the same answers.
func validJSON(b []byte) bool {
	if len(b) > maxNesting && bytes.Count(b, []byte{'['})+bytes.Count(b, []byte{'{'}) > maxNesting {
		return json.Valid(b)
	}
	return segjson.Valid(b)
}

// maxNesting is encoding/json's limit on nesting.
const maxNesting = 10000

// skipWS returns the index of the first non-whitespace byte at or after i.
func skipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipValue returns the index just past the JSON value starting at i.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			c := b[i]
			if !structural[c] {
				i++
				continue
			}
			switch c {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			default:
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	default:
		for i < len(b) {
			switch b[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
			i++
		}
		return i
	}
}

// structural marks the bytes skipValue stops at inside arrays and objects.
var structural = [256]bool{'"': true, '{': true, '}': true, '[': true, ']': true}

// skipString returns the index just past the string starting at b[i]=='"'.
func skipString(b []byte, i int) int {
	i++
	for i < len(b) {
		j := bytes.IndexByte(b[i:], '"')
		if j < 0 {
			return len(b)
		}
		k := i + j
		// The quote ends the string unless an odd run of backslashes
		// escapes it (the run cannot start before i: i follows a quote).
		n := 0
		for p := k - 1; p >= i && b[p] == '\\'; p-- {
			n++
		}
		if n%2 == 0 {
			return k + 1
		}
		i = k + 1
	}
	return len(b)
}

// eachField calls fn for every member of the JSON object obj (valid JSON),
// in order, with the decoded key and the raw value. It stops early when fn
// returns false.
func eachField(obj []byte, fn func(key string, val []byte) bool) error {
	i := skipWS(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return errNotObject
	}
	i = skipWS(obj, i+1)
	for i < len(obj) && obj[i] != '}' {
		if obj[i] != '"' {
			return errNotObject
		}
		end := skipString(obj, i)
		key := decodeString(obj[i:end])
		i = skipWS(obj, end)
		if i >= len(obj) || obj[i] != ':' {
			return errNotObject
		}
		i = skipWS(obj, i+1)
		vend := skipValue(obj, i)
		if !fn(key, obj[i:vend]) {
			return nil
		}
		i = skipWS(obj, vend)
		if i < len(obj) && obj[i] == ',' {
			i = skipWS(obj, i+1)
		}
	}
	return nil
}

// eachElem calls fn for every element of the JSON array arr (valid JSON).
func eachElem(arr []byte, fn func(val []byte)) error {
	i := skipWS(arr, 0)
	if i >= len(arr) || arr[i] != '[' {
		return errors.New("not a JSON array")
	}
	i = skipWS(arr, i+1)
	for i < len(arr) && arr[i] != ']' {
		end := skipValue(arr, i)
		if end == i {
			return errors.New("malformed array")
		}
		fn(arr[i:end])
		i = skipWS(arr, end)
		if i < len(arr) && arr[i] == ',' {
			i = skipWS(arr, i+1)
		}
	}
	return nil
}

// decodeString decodes a quoted JSON string exactly as encoding/json does
// (invalid UTF-8 becomes U+FFFD).
func decodeString(q []byte) string {
	if len(q) >= 2 {
		inner := q[1 : len(q)-1]
		plain := true
		for _, c := range inner {
			if c == '\\' || c < 0x20 {
				plain = false
				break
			}
		}
		if plain && utf8.Valid(inner) {
			return string(inner)
		}
	}
	var s string
	_ = json.Unmarshal(q, &s)
	return s
}

// jsonKind classifies a raw JSON value by its first byte.
func jsonKind(v []byte) byte {
	if len(v) == 0 {
		return 0
	}
	switch v[0] {
	case '"':
		return 's'
	case '{':
		return 'o'
	case '[':
		return 'a'
	case 'n':
		return 'z' // null
	case 't', 'f':
		return 'b'
	default:
		return 'n'
	}
}
