package evidence

import "regexp"

// sigParam matches the signature of a SAS token, in a URL or a bare query
// string, URL-encoded or not, and inside JSON text (where & is \u0026).
var sigParam = regexp.MustCompile(`(?i)((?:\b|%26|%3F|\\u0026)sig(?:=|%3D))[^&\s"'<>]*`)

// Redact replaces the signature of every SAS token in s with REDACTED.
// Everything kdfir prints or logs that may hold a blob URL goes through it.
func Redact(s string) string {
	return sigParam.ReplaceAllString(s, "${1}REDACTED")
}

// redactedError hides SAS signatures in an error's message while keeping
// the error chain for errors.Is and errors.As.
type redactedError struct{ err error }

func (e redactedError) Error() string { return Redact(e.err.Error()) }
func (e redactedError) Unwrap() error { return e.err }
