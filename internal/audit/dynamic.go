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
	if !json.Valid(raw) {
		return nil, errInvalidJSON
	}
	return dynamic(raw[skipWS(raw, 0):]), nil
}

var errInvalidJSON = &json.SyntaxError{}

// dynamic converts a valid JSON value starting at v[0].
func dynamic(v []byte) any {
	switch jsonKind(v) {
	case 's':
		return decodeString(v[:skipString(v, 0)])
	case 'o':
		m := map[string]any{}
		_ = eachField(v, func(k string, val []byte) bool {
			m[k] = dynamic(val)
			return true
		})
		return m
	case 'a':
		l := []any{}
		_ = eachElem(v, func(el []byte) { l = append(l, dynamic(el)) })
		return l
	case 'z':
		return nil
	case 'b':
		return v[0] == 't'
	case 'n':
		lit := v[:skipValue(v, 0)]
		if n, ok := intLiteral(lit); ok {
			return n
		}
		f, _ := strconv.ParseFloat(string(lit), 64)
		return f
	}
	return nil
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
