// A Go web app whose own code is pure Go and whose vendored dependency (example.com/cnum) is
// cgo with a stub for builds without cgo, the shape of apps on github.com/mattn/go-sqlite3.
package main

import (
	"fmt"
	"net/http"
	"os"

	"example.com/cnum"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		answer, err := cnum.Answer()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, answer)
	})
	http.ListenAndServe(":"+os.Getenv("PORT"), nil)
}
