//go:build !cgo

package cnum

import "errors"

// Answer without cgo is a stub that compiles and fails when called, as go-sqlite3's does.
func Answer() (string, error) {
	return "", errors.New("cnum: built with CGO_ENABLED=0, this is a stub")
}
