// pallet-static: the file server the static buildpack puts in the image. Standard library only,
// compiled with CGO_ENABLED=0, so it runs on any run image, even one without a libc or a shell.
//
// What it does:
//   - serves $STATIC_ROOT, else the root a Staticfile names ("root: dist", Cloud Foundry's
//     convention), else /workspace/public when it has an index.html, else /workspace (the root
//     is chosen when it starts, so the image does not depend on which one the app has);
//   - a single-page app ($STATIC_SPA=1, or "pushstate: enabled" in the Staticfile): a missing
//     path without a file extension gets the root's index.html (status 200), so the app's own
//     router handles it; a missing asset (a path with an extension) is still a 404;
//   - listens on :$PORT (default 8080); GET and HEAD only (405 otherwise);
//   - content types from a fixed table by extension (the same on every run image, with or
//     without /etc/mime.types), then Go's own, then sniffing; X-Content-Type-Options: nosniff;
//   - index.html for a directory ("/about/"); "/about" redirects to "/about/"; no listings;
//   - clean URLs: a missing path without a file extension is FILE.html when that exists
//     ("/about" -> about.html: how Next.js's static export and SvelteKit's adapter-static
//     write their pages, and what their hosts serve), before the single-page app's fallback;
//     so is a directory without index.html beside such a page (Next.js's about/ of page data);
//   - 404.html from the root (status 404) for a missing path, else a plain 404;
//   - hidden files (any path segment starting with "."), and symlinks leading out of the root,
//     are never served;
//   - ETag from the content (images built reproducibly give every file the same mtime, so
//     Last-Modified would lie), conditional and range requests, Cache-Control: no-cache
//     (browsers revalidate with the ETag);
//   - a precompressed FILE.gz next to FILE is served to clients that accept gzip;
//   - one access log line per request on stdout; graceful shutdown on SIGTERM and SIGINT.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"mime"
	"net/http"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8", ".htm": "text/html; charset=utf-8",
	".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
	".mjs": "text/javascript; charset=utf-8", ".json": "application/json",
	".map": "application/json", ".webmanifest": "application/manifest+json",
	".txt": "text/plain; charset=utf-8", ".md": "text/markdown; charset=utf-8",
	".csv": "text/csv; charset=utf-8", ".xml": "application/xml", ".rss": "application/rss+xml",
	".atom": "application/atom+xml", ".svg": "image/svg+xml", ".png": "image/png",
	".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif", ".webp": "image/webp",
	".avif": "image/avif", ".ico": "image/x-icon", ".bmp": "image/bmp",
	".woff": "font/woff", ".woff2": "font/woff2", ".ttf": "font/ttf", ".otf": "font/otf",
	".eot": "application/vnd.ms-fontobject", ".wasm": "application/wasm", ".pdf": "application/pdf",
	".mp4": "video/mp4", ".webm": "video/webm", ".mp3": "audio/mpeg", ".ogg": "audio/ogg",
	".wav": "audio/wav", ".zip": "application/zip", ".gz": "application/gzip",
	".tar": "application/x-tar",
}

func contentType(name string) string {
	ext := strings.ToLower(filepath.Ext(name))
	if t, ok := contentTypes[ext]; ok {
		return t
	}
	return mime.TypeByExtension(ext) // may be "": ServeContent then sniffs
}

// staticfile reads the keys of a Staticfile ("key: value" lines) in the app directory.
func staticfile() map[string]string {
	out := map[string]string{}
	for _, name := range []string{"/workspace/Staticfile", "Staticfile"} {
		data, err := os.ReadFile(name)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			if i := strings.Index(line, "#"); i >= 0 {
				line = line[:i]
			}
			k, v, ok := strings.Cut(line, ":")
			if ok {
				out[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"'`)
			}
		}
		out[".dir"] = filepath.Dir(name)
		return out
	}
	return out
}

// root picks the directory to serve.
func root() string {
	if r := os.Getenv("STATIC_ROOT"); r != "" {
		return r
	}
	if sf := staticfile(); sf["root"] != "" {
		return filepath.Join(sf[".dir"], sf["root"])
	}
	for _, dir := range []string{"/workspace/public", "public"} {
		if st, err := os.Stat(filepath.Join(dir, "index.html")); err == nil && st.Mode().IsRegular() {
			return dir
		}
	}
	if wd, err := os.Getwd(); err == nil {
		return wd
	}
	return "/workspace"
}

type etagKey struct {
	path  string
	size  int64
	mtime int64
}

type server struct {
	root  string // absolute, symlinks resolved
	spa   bool   // unknown routes get index.html
	etags sync.Map
}

// spaMode: $STATIC_SPA (1/true; 0/false turns it off), else the Staticfile's pushstate.
func spaMode() bool {
	switch strings.ToLower(os.Getenv("STATIC_SPA")) {
	case "1", "true", "yes", "enabled":
		return true
	case "0", "false", "no", "disabled":
		return false
	}
	return strings.EqualFold(staticfile()["pushstate"], "enabled")
}

func (s *server) etag(p string, st os.FileInfo) (string, error) {
	key := etagKey{p, st.Size(), st.ModTime().UnixNano()}
	if v, ok := s.etags.Load(key); ok {
		return v.(string), nil
	}
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	tag := `"` + hex.EncodeToString(h.Sum(nil))[:32] + `"`
	s.etags.Store(key, tag)
	return tag, nil
}

// resolve maps a URL path to a regular file or directory inside the root; ok is false for
// anything that must look missing (hidden, outside the root through a symlink, unreadable).
func (s *server) resolve(urlPath string) (full string, st os.FileInfo, ok bool) {
	clean := path.Clean("/" + urlPath)
	for _, seg := range strings.Split(clean, "/") {
		if strings.HasPrefix(seg, ".") {
			return "", nil, false
		}
	}
	full = filepath.Join(s.root, filepath.FromSlash(clean))
	real, err := filepath.EvalSymlinks(full)
	if err != nil || (real != s.root && !strings.HasPrefix(real, s.root+string(filepath.Separator))) {
		return "", nil, false
	}
	st, err = os.Stat(real)
	if err != nil || !(st.Mode().IsRegular() || st.IsDir()) {
		return "", nil, false
	}
	return real, st, true
}

type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w}
	s.serve(rec, r)
	log.Printf("%s %s %d %d %s", r.Method, r.URL.RequestURI(), rec.status, rec.bytes, time.Since(start).Round(time.Microsecond))
}

func (s *server) serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "405 method not allowed", http.StatusMethodNotAllowed)
		return
	}
	full, st, ok := s.resolve(r.URL.Path)
	clean := path.Clean("/" + r.URL.Path)
	if ok && st.IsDir() && !strings.HasSuffix(r.URL.Path, "/") && clean != "/" {
		// A directory without an index.html beside a page of its name (Next.js's export writes
		// about.html and about/ with the page's data): the page.
		if _, ist, iok := s.resolve(path.Join(clean, "index.html")); !iok || !ist.Mode().IsRegular() {
			if hfull, hst, hok := s.resolve(clean + ".html"); hok && hst.Mode().IsRegular() {
				full, st = hfull, hst
			}
		}
	}
	if ok && st.IsDir() {
		if !strings.HasSuffix(r.URL.Path, "/") {
			target := r.URL.Path + "/"
			if r.URL.RawQuery != "" {
				target += "?" + r.URL.RawQuery
			}
			http.Redirect(w, r, target, http.StatusMovedPermanently)
			return
		}
		full, st, ok = s.resolve(path.Join(r.URL.Path, "index.html"))
		ok = ok && st.Mode().IsRegular()
	}
	if !ok && clean != "/" && !strings.HasSuffix(r.URL.Path, "/") && !strings.Contains(path.Base(clean), ".") {
		full, st, ok = s.resolve(clean + ".html")
		ok = ok && st.Mode().IsRegular()
	}
	if !ok && s.spa && !strings.Contains(path.Base(clean), ".") {
		full, st, ok = s.resolve("/index.html")
		ok = ok && st.Mode().IsRegular()
	}
	if !ok {
		s.notFound(w, r)
		return
	}
	s.file(w, r, full, st, http.StatusOK)
}

func (s *server) file(w http.ResponseWriter, r *http.Request, full string, st os.FileInfo, status int) {
	h := w.Header()
	ctype := contentType(full)
	if status == http.StatusOK && strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		if gz, err := os.Stat(full + ".gz"); err == nil && gz.Mode().IsRegular() {
			h.Add("Vary", "Accept-Encoding")
			h.Set("Content-Encoding", "gzip")
			full, st = full+".gz", gz
		}
	}
	f, err := os.Open(full)
	if err != nil {
		http.Error(w, "500 internal server error", http.StatusInternalServerError)
		return
	}
	defer f.Close()
	if ctype != "" {
		h.Set("Content-Type", ctype)
	}
	if status != http.StatusOK { // an error page: no conditional or range handling
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Length", fmt.Sprint(st.Size()))
		w.WriteHeader(status)
		if r.Method != http.MethodHead {
			io.Copy(w, f)
		}
		return
	}
	if tag, err := s.etag(full, st); err == nil {
		h.Set("ETag", tag)
	}
	h.Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, full, time.Time{}, f) // zero time: no Last-Modified
}

func (s *server) notFound(w http.ResponseWriter, r *http.Request) {
	if full, st, ok := s.resolve("/404.html"); ok && st.Mode().IsRegular() {
		s.file(w, r, full, st, http.StatusNotFound)
		return
	}
	http.Error(w, "404 page not found", http.StatusNotFound)
}

func main() {
	log.SetFlags(0)
	log.SetOutput(os.Stdout)
	dir, err := filepath.Abs(root())
	if err == nil {
		dir, err = filepath.EvalSymlinks(dir)
	}
	if err != nil {
		log.Fatalf("pallet-static: cannot serve %s: %v", root(), err)
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	srv := &http.Server{
		Addr:              ":" + port,
		Handler:           &server{root: dir, spa: spaMode()},
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	go func() {
		mode := ""
		if spaMode() {
			mode = " (single-page app: unknown routes get index.html)"
		}
		log.Printf("pallet-static: serving %s on :%s%s", dir, port, mode)
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Fatalf("pallet-static: %v", err)
		}
	}()
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
}
