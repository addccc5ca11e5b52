import pytest

from builder.errors import InvalidReferenceError, UsageError
from builder.oci import reference as refs

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize("text,transport,fields", [
    ("oci:/tmp/lay:v1", refs.OCI, {"path": "/tmp/lay", "tag": "v1"}),
    ("oci:rel/dir", refs.OCI, {"path": "rel/dir", "tag": None}),
    (f"oci:/l@{DIGEST}", refs.OCI, {"path": "/l", "digest": DIGEST}),
    ("docker://127.0.0.1:5000/team/app:1.2", refs.REGISTRY,
     {"host": "127.0.0.1:5000", "repository": "team/app", "tag": "1.2"}),
    (f"docker://localhost/app@{DIGEST}", refs.REGISTRY, {"host": "localhost", "repository": "app", "digest": DIGEST}),
    ("docker://busybox", refs.REGISTRY, {"host": "docker.io", "repository": "library/busybox"}),
    ("docker-daemon:app:v2", refs.DAEMON, {"repository": "app", "tag": "v2"}),
    ("docker-archive:/tmp/a.tar", refs.ARCHIVE, {"path": "/tmp/a.tar", "repository": None}),
    ("docker-archive:/tmp/a.tar:app:v3", refs.ARCHIVE, {"path": "/tmp/a.tar", "repository": "app", "tag": "v3"}),
    ("myapp", refs.LOCAL, {"repository": "myapp", "tag": None}),
    ("team/myapp:2", refs.LOCAL, {"repository": "team/myapp", "tag": "2"}),
])
def test_parse(text, transport, fields):
    ref = refs.parse(text)
    assert ref.transport == transport
    for key, value in fields.items():
        assert getattr(ref, key) == value


@pytest.mark.parametrize("text", [
    "", " app", "Upper", "app:bad tag", "docker://127.0.0.1:5000/App", "oci:", "oci::tag",
    "docker://host/app@sha256:short", "docker-daemon:", "docker-archive:", "ftp://x/y",
    "containers-storage:x", "app:" + "t" * 200, "scratch",
    # a port out of range (urllib's own error, 'Failed to parse', came out of the push); a name
    # longer than a registry takes
    "docker://localhost:99999/app", "docker://localhost:0/app", "docker://[::1]:70000/app", "a" * 256,
    "docker://127.0.0.1:5000/" + "a/" * 128 + "a",
])
def test_malformed_is_usage_error(text):
    with pytest.raises(InvalidReferenceError) as exc:
        refs.parse(text)
    assert isinstance(exc.value, UsageError) and exc.value.exit_code == 2
    assert "\n" not in str(exc.value)


def test_a_digest_alone_asks_for_the_name_too():
    """'sha256:<hex>' (what a user copies from a build's output) parsed as the image 'sha256' at
    tag '<hex>', and the local store then said that tag was not there."""
    with pytest.raises(InvalidReferenceError) as exc:
        refs.parse(DIGEST)
    assert str(exc.value).startswith(f"{DIGEST} is a digest alone: name the image too, as NAME@{DIGEST}")
    assert refs.parse("sha256:v1").repository == "sha256"  # a tag that is no digest: a name like any


def test_scratch_only_where_allowed():
    assert refs.parse("scratch", allow_scratch=True).transport == refs.SCRATCH


def test_round_trip_and_digest_form():
    for text in ["oci:/tmp/lay:v1", "docker://127.0.0.1:5000/team/app:1.2", "docker-daemon:app:v2", "myapp:1"]:
        assert str(refs.parse(text)) == text
    ref = refs.parse("docker://127.0.0.1:5000/app:v1")
    assert ref.at_digest(DIGEST) == f"docker://127.0.0.1:5000/app:v1@{DIGEST}"
    assert ref.ref == "v1" and refs.parse("app").ref == "latest"
