// Package stock counts what is on the shelves.
package stock

// Count is how many of item are in stock.
func Count(item string) int { return len(item) * 7 }
