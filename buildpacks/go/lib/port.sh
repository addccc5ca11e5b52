# A Go server that listens on a port written in its code (http.ListenAndServe(":3000", nil), Gin's
# r.Run(":8000"), Echo's e.Start(":1323"), Fiber's app.Listen(":3000"), http.Server{Addr: ":5000"})
# and never reads PORT: requests come to $PORT (8080 unless the platform sets another, and what
# `pallet run -p` publishes) and never reach it. Read by bin/detect and bin/build, which must agree.

# Prints "FILE:LINE :PORT" for the first listen address with a port written in the app's Go code
# (not tests, vendor/ or testdata/), when no file of it reads the PORT variable; else nothing.
own_port() {
    local files
    files=$(grep -rlE --include='*.go' --exclude='*_test.go' --exclude-dir=vendor --exclude-dir=testdata \
                --exclude-dir=node_modules --exclude-dir=.git '"[^"]*:[0-9]+"' . 2>/dev/null || true)
    [[ -n "$files" ]] || return 0
    # Any read of PORT (os.Getenv("PORT"), LookupEnv, an env struct tag `env:"PORT"`): the app knows it.
    ! grep -rqE --include='*.go' --exclude='*_test.go' --exclude-dir=vendor --exclude-dir=testdata \
        --exclude-dir=node_modules --exclude-dir=.git '"PORT"' . 2>/dev/null || return 0
    local pattern='(ListenAndServe(TLS)?|\.(Run|RunTLS|Start|StartTLS|Listen|ListenTLS)|Addr[[:space:]]*:|net\.Listen\("tcp",)[[:space:]]*\(?[[:space:]]*"[^":]*:[0-9]+"'
    # shellcheck disable=SC2086  # the file names are grep's, one a line
    { grep -HnE -m1 "$pattern" $files 2>/dev/null || true; } | head -n1 \
        | sed -E 's#^\./##; s#^([^:]+:[0-9]+):.*"[^":]*(:[0-9]+)".*#\1 \2#'
}

# The warning for own_port's finding, or nothing.
own_port_warning() {
    local found
    found=$(own_port)
    [[ -n "$found" ]] || return 0
    echo "warning: ${found% *} listens on ${found##* }, a port written in the code, and the app never reads PORT:" \
         "requests to \$PORT (8080 unless the platform sets another) would not reach it; listen on" \
         "\":\" + os.Getenv(\"PORT\")"
}
