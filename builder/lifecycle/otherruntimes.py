"""What an app pallet's built-in buildpacks cannot build looks like, for the detect error.

A stranger's app in another language (a Gemfile, a pom.xml) fails detection in every group;
the groups' reasons ("no requirements.txt", "no package.json", ...) are true but do not say the
one thing the user needs: that the language is not one pallet builds, and what to do instead.
Only files at the top of the app are looked at, by name: nothing is read or run.
"""

from __future__ import annotations

import os
from pathlib import Path

#: (what the app looks like, its telltale file names; a leading '*' matches a suffix).
RUNTIMES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("a Ruby app", ("Gemfile", "config.ru", "*.gemspec", "Rakefile")),
    ("a Java (JVM) app", ("pom.xml", "build.gradle", "build.gradle.kts", "gradlew", "mvnw", "*.jar", "*.war")),
    ("a Scala app", ("build.sbt",)),
    ("a Kotlin app", ("*.kts",)),
    ("a PHP app", ("composer.json", "index.php", "artisan")),
    ("a Rust app", ("Cargo.toml",)),
    ("a .NET app", ("*.csproj", "*.fsproj", "*.vbproj", "*.sln", "global.json")),
    ("an Elixir app", ("mix.exs",)),
    ("an Erlang app", ("rebar.config",)),
    ("a Deno app", ("deno.json", "deno.jsonc")),
    ("a Dart app", ("pubspec.yaml",)),
    ("a Swift app", ("Package.swift",)),
    ("a Haskell app", ("stack.yaml", "*.cabal")),
    ("a Clojure app", ("project.clj", "deps.edn")),
    ("a C or C++ app", ("CMakeLists.txt", "Makefile", "meson.build")),
)

BUILT = "Python, Node.js, Go, static sites, shell scripts and Procfile apps"

#: Static site generators' sources: (what, the files that tell, with a directory beside any of them
#: when the file name alone says little (config.toml); the command that builds it, its output).
#: Checked before the languages: a Jekyll site has a Gemfile, but is no Ruby app to run.
SITES: tuple[tuple[str, tuple[str, ...], tuple[str, ...], str, str], ...] = (
    ("a Hugo site's source", ("hugo.toml", "hugo.yaml", "hugo.json"), (), "hugo", "public"),
    ("a Hugo site's source", ("config.toml", "config.yaml"), ("archetypes", "layouts", "themes"), "hugo", "public"),
    ("a Jekyll site's source", ("_config.yml", "_config.yaml"), ("_posts", "_layouts", "_includes", "Gemfile"),
     "jekyll build", "_site"),
    ("a MkDocs site's source", ("mkdocs.yml", "mkdocs.yaml"), (), "mkdocs build", "site"),
)


def site_source(names: list[str]) -> tuple[str, str, str] | None:
    """('a Hugo site's source (hugo.toml)', command, output) when the names are a generator's."""
    for what, files, beside, command, output in SITES:
        seen = [n for n in files if n in names]
        if seen and (not beside or any(n in names for n in beside)):
            return f"{what} ({seen[0]})", command, output
    return None


def recognise(app_dir: Path) -> str | None:
    """'a Ruby app (Gemfile)' for the first runtime whose files are at the top of ``app_dir``."""
    try:
        names = sorted(os.listdir(app_dir))
    except OSError:
        return None
    for what, patterns in RUNTIMES:
        seen = [n for n in names if any(n.endswith(p[1:]) if p.startswith("*") else n == p for p in patterns)]
        if seen:
            return f"{what} ({', '.join(seen[:3])})"
    if "Dockerfile" in names or "Containerfile" in names:
        return "an app built by its Dockerfile"
    return None


#: What pallet builds, by the names of the files that tell, for apps one directory down.
BUILDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Python", ("requirements.txt", "pyproject.toml", "Pipfile", "setup.py", "manage.py", "uv.lock")),
    ("Node.js", ("package.json",)),
    ("Go", ("go.mod", "go.work", "main.go")),
    ("a static site", ("Staticfile", "index.html")),
    ("a Procfile app", ("Procfile",)),
)
#: A monorepo's directories looked into, at most (sorted names): a bound, not a guess.
MAX_DIRS = 256


def apps_below(app_dir: Path) -> list[str]:
    """'api/ (Go: go.mod)' for each directory at the top (not hidden, no link) holding an app
    pallet builds: a monorepo (DigitalOcean's sample-monorepo: api/, frontend/, webhook/) failed
    detection at its top with every group's reason and not the one thing to do, build a part."""
    try:
        dirs = sorted(e.name for e in os.scandir(app_dir) if e.is_dir(follow_symlinks=False)
                      and not e.name.startswith(".") and e.name != "node_modules")[:MAX_DIRS]
    except OSError:
        return []
    found = []
    for name in dirs:
        try:
            inside = set(os.listdir(app_dir / name))
        except OSError:
            continue
        for what, files in BUILDS:
            seen = [f for f in files if f in inside]
            if seen:
                found.append(f"{name}/ ({what}: {seen[0]})")
                break
    return found


def hint(app_dir: Path) -> str:
    """The first line of the detect error: what the app looks like and what to do about it."""
    try:
        site = site_source(sorted(os.listdir(app_dir)))
    except OSError:
        site = None
    if site is not None:
        what, command, output = site
        return (f"no buildpack group passed detection: the app looks like {what}, which must be built into HTML "
                f"first: run `{command}` and build its output (pallet build ./{output}: a static site, served by "
                "pallet-static)")
    what = recognise(app_dir)
    if what is None:
        below = apps_below(app_dir)
        if below:
            return (f"no buildpack group passed detection: nothing to build at the top, but one directory down: "
                    f"{', '.join(below)}; build each on its own (pallet build ./{below[0].split('/')[0]})")
        return f"no buildpack group passed detection (pallet's built-in buildpacks build {BUILT})"
    return (f"no buildpack group passed detection: the app looks like {what}, which pallet's built-in "
            f"buildpacks do not build (they build {BUILT}); give a CNB buildpack for it with "
            "--buildpack DIR, or a Procfile whose command the run image can run")
