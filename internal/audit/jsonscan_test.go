package audit

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// FuzzValid holds validJSON to encoding/json's Valid, the reference, and
// for valid JSON, spaced to json.Compact changing it.
func FuzzValid(f *testing.F) {
	for _, s := range []string{
		`{"kind":"Event","verb":"get","user":{"username":"a","groups":["x","y"]},"code":200}`,
		`[1,-0,0.5e-3,1E+9,true,false,null,"\u00e9\ud800\"\\\/\b\f\n\r\t"]`,
		" \t\r\n{ \"a\" : [ ] , \"b\" : { } } \n",
		"\"\xff\xfe invalid UTF-8 is valid JSON\"",
		`{"a":1,}`, `[1,]`, `{"a"}`, `01`, `1.`, `.5`, `-`, `1e`, `+1`, `"\x"`, `"\u12"`,
		"\"\x01\"", `{"a":1}{"b":2}`, `{"a":1} x`, `nul`, `truee`, ``, ` `, `"`, `[[[[[[]]]]]]`,
		strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
		`{"a b":"c\\"," d":" e"}`, `{"a":"\" "}`, `"x\\" `, `{"args":["sh","-c","echo hi"]}`,
		`{"requestObject":{"spec":{"containers":[{"image":"ubuntu","securityContext":{"privileged":true}}]}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, want := validJSON(data), json.Valid(data)
		if got != want {
			t.Fatalf("validJSON(%q) = %v, encoding/json says %v", data, got, want)
		}
		if !want {
			return
		}
		var b bytes.Buffer
		if err := json.Compact(&b, data); err != nil {
			t.Fatal(err)
		}
		if got, want := spaced(data), !bytes.Equal(b.Bytes(), data); got != want {
			t.Fatalf("spaced(%q) = %v, json.Compact changes it: %v", data, got, want)
		}
	})
}
