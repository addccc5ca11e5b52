# Sourced by bin/detect and bin/build. assets_for prints the manifest of another language's app
# beside package.json (a Python or Go app whose package.json builds its assets), or nothing.
assets_for() {
    local f
    for f in requirements.txt pyproject.toml Pipfile setup.py uv.lock poetry.lock pdm.lock go.mod go.work main.go; do
        [[ -f "$f" ]] && { echo "$f"; return 0; }
    done
    return 0
}
