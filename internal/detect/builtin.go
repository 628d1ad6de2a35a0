package detect

import (
	"embed"
	"io/fs"
)

//go:embed rules/*.yaml
var builtinFS embed.FS

// Builtin returns the built-in rule pack, with params overridden from the
// config (for example allowed_registries).
func Builtin(params map[string]string) ([]*Rule, error) {
	sub, err := fs.Sub(builtinFS, "rules")
	if err != nil {
		return nil, err
	}
	return LoadFS(sub, params)
}
