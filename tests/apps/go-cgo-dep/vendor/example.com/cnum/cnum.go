//go:build cgo

// Package cnum stands for a module whose real code is C called through cgo (go-sqlite3's shape).
package cnum

// static int answer(void) { return 6 * 7; }
import "C"

// Answer is computed by C.
func Answer() (string, error) {
	return "C says " + itoa(int(C.answer())), nil
}
