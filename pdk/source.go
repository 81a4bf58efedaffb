//go:build !wasip1

package pdk

import "embed"

// Source is this PDK's own source: its Go files, go.mod and README.md. Tools
// that set up a plugin project outside Arcade's repository (`arcade plugin
// new`) write it beside the plugin and point the plugin's go.mod at that
// copy, so the plugin builds with no access to a module proxy. Plugins
// (GOOS=wasip1) never link it.
//
//go:embed *.go go.mod README.md
var Source embed.FS

// CHeader is c/arcade.h, the header of plugins in C, which `arcade plugin
// new --lang c` writes beside a C plugin.
//
//go:embed c/arcade.h
var CHeader string
