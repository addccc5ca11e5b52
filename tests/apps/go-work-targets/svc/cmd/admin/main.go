// An admin console: a second main package in the same module, not the one to deploy here.
package main

import "example.com/lib"

func main() { lib.Serve("admin") }
