// Package lib is the workspace's library module, shared by both commands of ./svc.
package lib

import (
	"fmt"
	"net/http"
	"os"
)

// Serve answers every path with "Hello from go-work-targets, <name>" on $PORT (default 8080).
func Serve(name string) {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "Hello from go-work-targets, %s\n", name)
	})
	fmt.Println(name, "listening on", port)
	if err := http.ListenAndServe(":"+port, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
