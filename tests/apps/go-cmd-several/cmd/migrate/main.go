package main

import (
	"fmt"

	"example.com/shop/internal/store"
)

func main() { fmt.Printf("migrated to schema %d\n", store.Schema) }
