package main

import (
	"embed"
	"fmt"
	"net/http"
	"os"
	"runtime"

	"github.com/acme/inventory/v2/internal/stock"
)

//go:embed static/banner.txt
var assets embed.FS

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		banner, _ := assets.ReadFile("static/banner.txt")
		fmt.Fprintf(w, "%s: %d widgets (%s)\n", banner[:len(banner)-1], stock.Count("widget"), runtime.Version())
	})
	http.ListenAndServe(":"+port, nil)
}
