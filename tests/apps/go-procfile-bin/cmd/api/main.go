package main

import (
	"fmt"
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "Hello from go-procfile-bin api") })
	http.ListenAndServe(":"+os.Getenv("PORT"), nil)
}
