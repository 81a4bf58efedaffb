module github.com/go-arcade/arcade/pdk

// The PDK is a module of its own so that a plugin depends on it alone. It
// imports the standard library only. Its major version is the plugin
// contract's: v1 speaks arcade.plugin.v1 (ContractVersion).
go 1.24
