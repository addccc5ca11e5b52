//go:build !cgo

package main

func implementation() string {
	return "pure Go"
}
