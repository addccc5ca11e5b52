// The public API: the command project.toml's BP_GO_TARGETS names.
package main

import "example.com/lib"

func main() { lib.Serve("api") }
