"""pallet/python's prefetch of a pinned requirements file (buildpacks/python/lib/prefetch.py): the
wheels pip would fetch one at a time, fetched at once, then installed by pip without an index.
The image must be the one pip alone makes (a build both ways, one digest); what the prefetch
reads of the requirements and of the wheels' metadata is checked on its own."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import shutil
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest

from tests.samplekit import ROOT

sys.path.insert(0, str(ROOT / "buildpacks" / "python" / "lib"))
prefetch = pytest.importorskip("prefetch")   # needs pip's vendored packaging, as the build image's pip has


def test_pins_read_continuations_hashes_markers_and_comments(tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text("# uv pip compile output\n"
                   "flask==3.1.3 \\\n    --hash=sha256:aa \\\n    --hash=sha256:bb\n    # via -r requirements.in\n"
                   "colorama==0.4.6 ; sys_platform == 'win32'\n"
                   "gunicorn[gevent]==27.0.1  # the server\n")
    got = [(str(r), h) for r, h in prefetch.pins(req)]
    assert got == [("flask==3.1.3", {"aa", "bb"}), ("gunicorn[gevent]==27.0.1", set())]


@pytest.mark.parametrize("line,reason", [
    ("flask>=3", "flask>=3 is not pinned to one version"),
    ("flask==3.*", "is not pinned to one version"),
    ("flask==3.1.3,!=3.1.2", "is not pinned to one version"),
    ("flask @ https://example.com/flask.whl", "is not pinned to one version"),
    ("-r other.txt", "other.txt cannot be read (FileNotFoundError)"),
    ("-r https://example.com/requirements.txt", "the requirements include https://example.com/requirements.txt"),
    ("--index-url https://example.com/simple", "an option line (--index-url)"),
    ("-e .", "an option line (-e)"),
    # packaging's parser recursed out of the stack (a traceback in the build's output)
    ("flask==3.1.3 ; " + "(" * 3000 + "python_version > '3'" + ")" * 3000, "its marker is nested too deeply"),
])
def test_what_pip_fetches_itself(tmp_path, line, reason):
    req = tmp_path / "requirements.txt"
    req.write_text(f"click==8.5.1\n{line}\n")
    with pytest.raises(prefetch.ToPip, match=reason.replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")):
        prefetch.pins(req)


def test_included_files_are_read_relative_to_the_file_that_includes_them(tmp_path):
    """requirements/prod.txt with -r base.txt (pip-tools' layering), -c constraints, a package
    pinned in two files (once with an extra), option lines that change nothing for wheels."""
    (tmp_path / "requirements").mkdir()
    (tmp_path / "requirements.txt").write_text("-r requirements/prod.txt\n--prefer-binary\n")
    (tmp_path / "requirements" / "prod.txt").write_text("-r base.txt\n--constraint=../constraints.txt\n"
                                                         "gunicorn==23.0.0\nFlask[async]==3.1.3\n")
    (tmp_path / "requirements" / "base.txt").write_text("flask==3.1.3\nZope.Interface==7.2\n-rprod.txt\n")
    (tmp_path / "constraints.txt").write_text("gunicorn<24\nidna<4\n")
    got = sorted((str(r), h) for r, h in prefetch.pins(tmp_path / "requirements.txt"))
    assert got == [("Zope.Interface==7.2", set()), ("flask[async]==3.1.3", set()), ("gunicorn==23.0.0", set())]
    (tmp_path / "constraints.txt").write_text("gunicorn<23\n")
    with pytest.raises(prefetch.ToPip, match=r"gunicorn==23.0.0 is not within the constraint gunicorn<23"):
        prefetch.pins(tmp_path / "requirements.txt")
    (tmp_path / "constraints.txt").write_text("")
    (tmp_path / "requirements" / "base.txt").write_text("flask==3.1.2\n")
    with pytest.raises(prefetch.ToPip, match=r"Flask is pinned to two versions"):
        prefetch.pins(tmp_path / "requirements.txt")


def wheel(tmp_path: Path, name: str, requires: list[str]) -> Path:
    path = tmp_path / f"{name}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{name}-1.0.dist-info/METADATA",
                   "Metadata-Version: 2.1\nName: %s\nVersion: 1.0\n%s\n\nlong description\nRequires-Dist: not-a-header\n"
                   % (name, "".join(f"Requires-Dist: {r}\n" for r in requires)))
    return path


def test_every_requirement_of_the_wheels_must_be_in_the_set(tmp_path):
    wheels = {
        "flask": (wheel(tmp_path, "flask", ["click>=8", "colorama; sys_platform == 'win32'", "asgiref; extra == 'async'"]),
                  set()),
        "click": (wheel(tmp_path, "click", []), set()),
    }
    assert prefetch.missing_requirements(wheels) == []
    wheels["flask"] = (wheels["flask"][0], {"async"})   # flask[async]: asgiref is needed now
    assert prefetch.missing_requirements(wheels) == ["asgiref (for flask)"]
    del wheels["click"]
    assert "click (for flask)" in prefetch.missing_requirements(wheels)


@pytest.mark.slow
def test_the_image_is_the_one_pip_alone_makes(bookworm, tmp_path):
    """samples/python-flask (uv's compiled requirements with hashes): 8 wheels, one digest."""
    digests = {}
    for how in ("true", "false"):
        done = bookworm.build(ROOT / "samples" / "python-flask", f"pre:{how}", tmp_path / f"cache-{how}",
                              "--env", f"BP_PIP_PREFETCH={how}")
        assert ("fetched 8 wheels at once" in done.stderr) == (how == "true"), done.stderr
        digests[how] = json.loads(done.stdout)["digest"]
    assert digests["true"] == digests["false"]


@pytest.mark.slow
def test_requirements_pip_must_resolve_are_installed_by_pip(bookworm, tmp_path):
    src = tmp_path / "app"
    shutil.copytree(ROOT / "samples" / "python-flask", src)
    (src / "requirements.txt").write_text("flask==3.1.3\ngunicorn==27.0.1\n")   # top-level pins only
    done = bookworm.build(src, "pre:loose", tmp_path / "cache")
    assert "pip fetches: the requirements do not pin" in done.stderr, done.stderr
    assert "Successfully installed" in done.stderr and "werkzeug" in done.stderr.lower()


def test_why_a_pin_has_no_wheel_is_said():
    """idna==3.10 from PyPI with a --hash of no file of it: not merely "no wheel for this
    Python"; django==6.0 on Python 3.11: its wheels' Requires-Python."""
    req = prefetch.Requirement("idna==3.10")
    supported = list(prefetch.tags.sys_tags())
    with pytest.raises(prefetch.ToPip, match=r"idna==3.10 has no wheel for this Python among those its --hash options "
                                             r"allow \(1 other wheels\)"):
        prefetch.choose(req, {"0" * 64}, supported)
    assert prefetch.choose(req, set(), supported)["filename"] == "idna-3.10-py3-none-any.whl"
    with pytest.raises(prefetch.ToPip, match=r"^django==6.0 has no wheel for this Python \(its wheels require Python "
                                             r">=3.12\)$") if sys.version_info < (3, 12) else contextlib.nullcontext():
        prefetch.choose(prefetch.Requirement("django==6.0"), set(), supported)


class _Zeros(http.server.BaseHTTPRequestHandler):
    """SIZE bytes of zeros, sent a MiB at a time (a wheel as big as torch's, never held here)."""

    SIZE = 256 << 20

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Length", str(self.SIZE))
        self.end_headers()
        chunk = bytes(1 << 20)
        for _ in range(self.SIZE // len(chunk)):
            self.wfile.write(chunk)

    def log_message(self, *args: object) -> None:
        pass


def test_a_wheel_is_streamed_to_disk_not_held_in_memory(tmp_path):
    """Sixteen downloads at once each held its whole wheel in memory (an app pinning torch and the
    nvidia-* wheels: gigabytes at once). A 256 MiB wheel now costs a fetch far less than that;
    one that does not match its sha256 leaves nothing behind."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Zeros)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/big-1.0-py3-none-any.whl"
    sha = hashlib.sha256(bytes(_Zeros.SIZE)).hexdigest()
    script = ("import json, sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); import prefetch\n"
              "c = json.loads(sys.argv[2]); d = Path(sys.argv[3])\n"
              "try: prefetch.fetch({**c, 'sha256': '0' * 64}, d)\n"
              "except prefetch.ToPip as e: print(e)\n"
              "print(sorted(p.name for p in d.iterdir()))\n"
              "prefetch.fetch(c, d)\n"
              # VmHWM: this process's own peak. ru_maxrss keeps the parent's across fork and exec
              # (568 MiB after pytest had run 800 tests in CI, for a fetch that held a few MiB).
              "print(next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:')) // 1024)")
    chosen = {"url": url, "sha256": sha, "filename": "big-1.0-py3-none-any.whl"}
    try:
        done = subprocess.run([sys.executable, "-c", script, str(ROOT / "buildpacks" / "python" / "lib"),
                               json.dumps(chosen), str(tmp_path)], capture_output=True, text=True, timeout=300)
    finally:
        server.shutdown()
    assert done.returncode == 0, done.stderr
    mismatch, left, peak_mib = done.stdout.splitlines()
    assert mismatch == "big-1.0-py3-none-any.whl does not match the index's sha256" and left == "[]"
    assert (tmp_path / "big-1.0-py3-none-any.whl").stat().st_size == _Zeros.SIZE
    assert int(peak_mib) < 128, f"{peak_mib} MiB for a 256 MiB wheel"


class _Index(http.server.BaseHTTPRequestHandler):
    """An index whose page for a project is PAGES[project] (bytes), or valid JSON 1 MiB over the limit."""

    PAGES: dict[str, bytes] = {}

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = self.PAGES.get(self.path.strip("/"))
        self.send_response(200)
        self.end_headers()
        with contextlib.suppress(OSError):   # the reader stops at its limit and hangs up
            if body is None:
                self.wfile.write(b'{"files": [')
                for _ in range(65):
                    self.wfile.write(b" " * (1 << 20))
                body = b"]}"
            self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


_WHEEL = {"filename": "a-1.0-py3-none-any.whl", "url": "https://x/a-1.0-py3-none-any.whl", "hashes": {"sha256": "0" * 64}}


@pytest.mark.parametrize("page, reason", [
    ([], "the index's page for a must be an object"),
    ({"files": {}}, "the index's page for a: files must be an array"),
    ({"files": [5]}, r"the index's page for a: files\[0\] must be an object"),
    ({"files": [_WHEEL, {**_WHEEL, "hashes": ["x"]}]}, r"files\[1\].hashes must be an object"),
    ({"files": [{**_WHEEL, "hashes": {"sha256": 5}}]}, r"files\[0\].hashes.sha256 must be a string"),
    ({"files": [{**_WHEEL, "filename": 5}]}, r"files\[0\].filename must be a string"),
    ({"files": [{k: v for k, v in _WHEEL.items() if k != "url"}]}, r"files\[0\] has no url"),
    ({"files": [{**_WHEEL, "requires-python": 3}]}, r"files\[0\].requires-python must be a string"),
    ({"files": [{**_WHEEL, "yanked": 1}]}, r"files\[0\].yanked must be a boolean or a string"),
    (None, "answers more than 64 MiB"),
])
def test_an_index_answer_of_the_wrong_shape_is_said_field_by_field(monkeypatch, page, reason):
    """An index page of other types went to pip as 'AttributeError: ...' or 'KeyError: url', and a
    page that never ended was read whole into memory; now the field is named, the read bounded."""
    _Index.PAGES = {} if page is None else {"a": json.dumps(page).encode()}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Index)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(prefetch, "INDEX", f"http://127.0.0.1:{server.server_address[1]}/")
    try:
        with pytest.raises(prefetch.ToPip, match=reason):
            prefetch.choose(prefetch.Requirement("a==1.0"), set(), list(prefetch.tags.sys_tags()))
    finally:
        server.shutdown()
