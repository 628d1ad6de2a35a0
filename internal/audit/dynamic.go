package audit

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// Dynamic converts valid JSON to the Go-native dynamic value of the table
// contract: nil, bool, int64 (integral numbers that fit), float64, string,
// []any, map[string]any. Duplicate object keys keep the last value, as in
// encoding/json.
func Dynamic(raw []byte) (any, error) {
	if !validJSON(raw) {
		return nil, errInvalidJSON
	}
	return dynamic(raw[skipWS(raw, 0):]), nil
}

var errInvalidJSON = &json.SyntaxError{}

// dynamic converts a valid JSON value starting at v[0].
func dynamic(v []byte) any {
	x, _ := parseDyn(v, 0)
	return x
}

// parseDyn converts the valid JSON value at b[i:] in one pass (linear even
// for deeply nested values) and returns the index after it.
func parseDyn(b []byte, i int) (any, int) {
	i = skipWS(b, i)
	if i >= len(b) {
		return nil, i
	}
	switch b[i] {
	case '"':
		end := skipString(b, i)
		return decodeString(b[i:end]), end
	case '{':
		m := map[string]any{}
		i = skipWS(b, i+1)
		for i < len(b) && b[i] == '"' {
			end := skipString(b, i)
			k := decodeString(b[i:end])
			i = skipWS(b, end)
			if i >= len(b) || b[i] != ':' {
				break
			}
			var x any
			x, i = parseDyn(b, i+1)
			m[k] = x
			i = skipWS(b, i)
			if i < len(b) && b[i] == ',' {
				i = skipWS(b, i+1)
			}
		}
		return m, min(i+1, len(b))
	case '[':
		l := []any{}
		i = skipWS(b, i+1)
		for i < len(b) && b[i] != ']' {
			x, n := parseDyn(b, i)
			if n <= i {
				break
			}
			l = append(l, x)
			i = skipWS(b, n)
			if i < len(b) && b[i] == ',' {
				i = skipWS(b, i+1)
			}
		}
		return l, min(i+1, len(b))
	case 'n':
		return nil, min(i+4, len(b))
	case 't':
		return true, min(i+4, len(b))
	case 'f':
		return false, min(i+5, len(b))
	}
	end := skipValue(b, i)
	lit := b[i:end]
	if n, ok := intLiteral(lit); ok {
		return n, end
	}
	f, _ := strconv.ParseFloat(string(lit), 64)
	return f, end
}

// compactJSON marshals a dynamic value the way tostring() renders it.
func compactJSON(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return ""
	}
	return string(bytes.TrimRight(b.Bytes(), "\n"))
}
