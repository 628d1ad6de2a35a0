// Package web holds the analyst console that kdfir serve serves at /: a
// page and its script and style, embedded in the binary, with no CDN and
// no build step. The console speaks only the documented HTTP API.
package web

import "embed"

// Console is the console's files: index.html, console.js, console.css.
//
//go:embed console
var Console embed.FS
