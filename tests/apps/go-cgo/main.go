// A Go app that uses cgo when it can, with a pure-Go fallback (a common pattern: a C library
// when there is a C compiler, Go code otherwise). Written for pallet's tests
// (tests/test_multiarch_go.py): its cgo file makes a foreign platform's build emulated, not
// cross-compiled. It prints which implementation it was built with and the machine's architecture.
package main

import (
	"os"
	"runtime"
)

func main() {
	os.Stdout.WriteString(implementation() + " on " + runtime.GOARCH + "\n")
}
