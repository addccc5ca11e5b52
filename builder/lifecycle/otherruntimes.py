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


def hint(app_dir: Path) -> str:
    """The first line of the detect error: what the app looks like and what to do about it."""
    what = recognise(app_dir)
    if what is None:
        return f"no buildpack group passed detection (pallet's built-in buildpacks build {BUILT})"
    return (f"no buildpack group passed detection: the app looks like {what}, which pallet's built-in "
            f"buildpacks do not build (they build {BUILT}); give a CNB buildpack for it with "
            "--buildpack DIR, or a Procfile whose command the run image can run")
