// Package greet is the workspace's library module, used by ./api through go.work.
package greet

// Hello greets who.
func Hello(who string) string { return "Hello from go-work, " + who }
