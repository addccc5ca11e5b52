# Where the required modules come from, for bin/detect and bin/build to say so rightly: a module
# that a replace directive points at a directory (=> ./lib) or that is a module of the go.work
# needs no download; the others come from the proxy (or vendor/).

# Prints one line per required module that is not one of go.work's own: "local MODULE DIR" or
# "proxy MODULE VERSION".
# FILES: go.mod, or go.work first and then its modules' go.mod files (go.work's replaces win).
module_sources() {  # FILE...
    awk '
    function clean(s) { sub(/\/\/.*/, "", s); gsub(/"/, "", s); return s }
    function islocal(p) { return p ~ /^(\.|\.\.)$/ || p ~ /^(\.\/|\.\.\/|\/)/ }
    FNR == 1 { block = "" }
    { line = clean($0) }
    block != "" && line ~ /^[[:space:]]*\)/ { block = ""; next }
    match(line, /^[[:space:]]*(require|replace|exclude|retract|use|godebug|tool|ignore)[[:space:]]*\(/) {
        block = line; sub(/^[[:space:]]*/, "", block); sub(/[[:space:]]*\(.*/, "", block); next }
    {
        kind = block
        if (kind == "") {
            split(line, w, /[[:space:]]+/); kind = (w[1] == "") ? w[2] : w[1]
            if (kind == "module") { mods[(w[1] == "") ? w[3] : w[2]] = 1; next }
            sub("^[[:space:]]*" kind "[[:space:]]+", "", line)
        }
        if (kind == "require") {
            n = split(line, w, /[[:space:]]+/); i = (w[1] == "") ? 2 : 1
            if (w[i] != "" && !(w[i] in req)) { req[w[i]] = w[i + 1]; order[++count] = w[i] }
        } else if (kind == "replace" && line ~ /=>/) {
            split(line, side, /=>/)
            n = split(side[1], l, /[[:space:]]+/); i = (l[1] == "") ? 2 : 1
            m = split(side[2], r, /[[:space:]]+/); j = (r[1] == "") ? 2 : 1
            key = l[i] " " l[i + 1]
            if (!(key in rep)) rep[key] = r[j]
        }
    }
    END {
        for (k = 1; k <= count; k++) {
            p = order[k]; v = req[p]
            to = (p " " v) in rep ? rep[p " " v] : ((p " ") in rep ? rep[p " "] : "")
            if (p in mods) continue   # a module of the workspace itself
            if (to != "" && islocal(to)) print "local", p, to
            else print "proxy", p, v
        }
    }' "$@"
}

# Says in one phrase where the modules come from: "no download: ...", "from the proxy: ...", or
# both (the modules that need the proxy, and which are directories of the app). Empty: none.
module_sources_summary() {  # FILE...
    local sources proxy local_dirs
    sources=$(module_sources "$@")
    proxy=$(awk '$1 == "proxy" { printf "%s%s", sep, $2; sep = ", " }' <<< "$sources" | cut -c1-200)
    local_dirs=$(awk '$1 == "local" { printf "%s%s => %s", sep, $2, $3; sep = ", " }' <<< "$sources" | cut -c1-200)
    if [[ -n "$proxy" && -n "$local_dirs" ]]; then
        echo "modules from the proxy: $proxy (replaced by directories of the app, no download: $local_dirs)"
    elif [[ -n "$proxy" ]]; then
        echo "modules from the proxy"
    elif [[ -n "$local_dirs" ]]; then
        echo "modules replaced by directories of the app, no download: $local_dirs"
    fi
}

# The imports of FILES that are no standard-library package (their first path element has a dot:
# github.com/gin-gonic/gin), one a line, sorted: what a main.go without go.mod cannot build, as
# no go.mod says which versions to fetch ("no required module provides package ...").
nonstd_imports() {  # FILE...
    awk '
    function take(s) { if (match(s, /"[^"]+"/)) { p = substr(s, RSTART + 1, RLENGTH - 2); split(p, e, "/")
                                                 if (e[1] ~ /\./) print p } }
    /^[[:space:]]*import[[:space:]]*\(/ { block = 1; next }
    block && /^[[:space:]]*\)/ { block = 0; next }
    block { take($0); next }
    /^[[:space:]]*import[[:space:]]/ { take($0) }
    ' "$@" 2>/dev/null | sort -u
}

# The error for top-level Go files without go.mod that import modules, or nothing.
nomod_error() {
    local files=() f imports
    for f in *.go; do [[ "$f" == *_test.go || ! -f "$f" ]] || files+=("$f"); done
    [[ ${#files[@]} -gt 0 ]] || return 0
    imports=$(nonstd_imports "${files[@]}")
    [[ -n "$imports" ]] || return 0
    echo "error: the app imports $(head -n1 <<< "$imports")$([[ $(wc -l <<< "$imports") -lt 2 ]] || echo " (and $(( $(wc -l <<< "$imports") - 1 )) more)")," \
         "and has no go.mod to say which version to fetch: run go mod init MODULE && go mod tidy, and commit go.mod" \
         "and go.sum"
}
