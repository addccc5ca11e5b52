package main

import (
	"fmt"
	"net/http"
	"os"

	"example.com/shop/internal/store"
)

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "Hello from go-cmd-several (schema %d)\n", store.Schema)
	})
	http.ListenAndServe(":"+port, nil)
}
