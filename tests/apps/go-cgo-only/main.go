package main

/*
#include <stdlib.h>
static int twice(int x) { return 2 * x; }
*/
import "C"

import (
	"fmt"
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "Hello from go-cgo-only: %d\n", int(C.twice(21)))
	})
	http.ListenAndServe(":"+os.Getenv("PORT"), nil)
}
