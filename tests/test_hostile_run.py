"""``pallet run`` of hostile images (issue 11, third sweep): what an image's config and its own
/etc/passwd say is untrusted. Each case is pallet's one-line error before anything starts: it was
a ValueError traceback, or bubblewrap failing half-way and pallet's "Broken pipe" after it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.oci.stores.layout import LayoutStore
from tests.cli import pallet
from tests.imagekit import push_layer_blobs, tar_of
from tests.test_hostile_inputs import one_line_error


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"XDG_CACHE_HOME": str(tmp_path / "cache"), "PALLET_HOME": str(tmp_path / "home")}


def _image(tmp_path: Path, run: dict, files: dict[str, bytes] | None = None) -> str:
    files = {"bin/app": b"#!/bin/sh\n", **(files or {})}
    push_layer_blobs(LayoutStore(tmp_path / "img"), [tar_of(files)], tag="t",
                     config_extra={"config": {"Entrypoint": ["/bin/app"], **run}})
    return f"oci:{tmp_path}/img:t"


@pytest.mark.parametrize("run, needle", [
    ({"Entrypoint": ["/bin/app\u0000--evil"]}, "argument '/bin/app\\x00--evil' contains a NUL byte"),
    ({"Cmd": ["a\u0000b"]}, "contains a NUL byte"),
    ({"Env": ["A=x\u0000y"]}, "variable A contains a NUL byte"),
    ({"Env": ["=value"]}, "variable name '' (value 'value') is not valid"),
    ({"Env": ["A\u0000B=1"]}, "variable name 'A\\x00B' (value '1') is not valid"),
    ({"WorkingDir": "/tmp\u0000/x"}, "working directory '/tmp\\x00/x' contains a NUL byte"),
    ({"User": "99999999999999999999"}, "uid 99999999999999999999 is out of range"),
    ({"User": "0:4294967295"}, "gid 4294967295 is out of range"),
    # Linux's limits on what a program starts with: E2BIG named bubblewrap, or came from inside it
    ({"Cmd": ["y" * 200_000]}, "argument 1 of the command ('yyy"),
    ({"Env": ["BIG=" + "x" * 200_000]}, "variable 'BIG' of the environment is 200005 bytes"),
    ({"Env": [f"V{i}=" + "x" * 60_000 for i in range(40)]}, "over Linux's limit of"),
    # a name longer than any file system holds: was 'File name too long' and the name, 4 KB of it
    ({"WorkingDir": "/" + "w" * 5000}, "w…[4801 characters left out]…w"),
    ({"User": "u" * 5000}, "u…[4800 characters left out]…u"),
], ids=["entrypoint-nul", "cmd-nul", "env-value-nul", "env-empty-name", "env-name-nul", "workdir-nul",
        "uid-huge", "gid-no-id", "arg-200k", "env-value-200k", "env-2-4mb", "workdir-5k", "user-5k"])
def test_a_config_no_program_can_start_with_is_a_one_line_error(tmp_path: Path, env, run, needle) -> None:
    one_line_error(pallet("run", _image(tmp_path, run), env=env, check=False), needle)


@pytest.mark.parametrize("user, passwd, needle", [
    ("\u00b2", b"", "user '\u00b2' is not in its /etc/passwd"),  # '²'.isdigit(), int('²') raises
    ("app", b"app:x:abc:def:app:/home/app:/bin/sh\n", "user 'app' is not in its /etc/passwd"),
    ("app:grp", b"app:x:1000:1000:app:/home/app:/bin/sh\n", "group 'grp' is not in its /etc/group"),
], ids=["superscript-digit", "passwd-ids-not-numbers", "group-gid-not-a-number"])
def test_garbage_in_the_images_passwd_is_a_one_line_error(tmp_path: Path, env, user, passwd, needle) -> None:
    files = {"etc/passwd": passwd, "etc/group": "grp:x:\u0661\u0662:\n".encode()}  # '١٢': Arabic digits
    one_line_error(pallet("run", _image(tmp_path, {"User": user}, files), env=env, check=False), needle)


def test_a_passwd_row_with_garbage_ids_does_not_hide_a_good_one(tmp_path: Path, env) -> None:
    """The first row naming the user is garbage: the next one is used (it was a ValueError)."""
    passwd = b"app:x:zz:zz::/nowhere:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"
    ref = _image(tmp_path, {"User": "app", "Entrypoint": ["/bin/sh", "-c", "id -u"]}, {"etc/passwd": passwd})
    proc = pallet("run", ref, env=env, check=False)
    assert "Traceback" not in proc.stderr and "ValueError" not in proc.stderr, proc.stderr
    assert "is not in its /etc/passwd" not in proc.stderr, proc.stderr


def test_lone_surrogates_in_a_config_read_as_the_replacement_character(tmp_path: Path, env) -> None:
    """``"\\udc80"`` is valid JSON but no character: inspect died printing it, append writing the
    config back, run handing it to bubblewrap (UnicodeEncodeError). Go reads it as U+FFFD; so do we."""
    import json as _json

    from builder.oci import mediatypes as mt
    from builder.oci.digest import sha256

    store = LayoutStore(tmp_path / "img")
    raw = tar_of({"bin/app": b"#!/bin/sh\n"})
    layer = store.put_blob_bytes(raw, mt.OCI_LAYER)
    config = ('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["%s"]},'
              '"config":{"Labels":{"a\\udfff":"\\udc80"},"Env":["X=\\ud800"],"Cmd":["/bin/app"]}}'
              % sha256(raw)).encode()
    cfg = store.put_blob_bytes(config, mt.OCI_CONFIG)
    manifest = ('{"schemaVersion":2,"mediaType":"%s","config":%s,"layers":[%s],"annotations":{"n":"\\udc80"}}'
                % (mt.OCI_MANIFEST, _json.dumps(cfg.to_json()), _json.dumps(layer.to_json()))).encode()
    store.put_manifest(manifest, mt.OCI_MANIFEST, tag="t")
    ref = f"oci:{tmp_path}/img:t"
    assert "a\ufffd" in pallet("inspect", ref, env=env).stdout
    info = _json.loads(pallet("inspect", "--json", ref, env=env).stdout)
    assert info["config"]["env"] == ["X=\ufffd"], info["config"]
    (tmp_path / "extra").mkdir()
    pallet("append", ref, str(tmp_path / "extra"), f"oci:{tmp_path}/out:t", env=env)
    proc = pallet("run", ref, env=env, check=False)
    assert "Traceback" not in proc.stderr and "UnicodeEncodeError" not in proc.stderr, proc.stderr


def test_a_huge_passwd_is_refused_not_read_whole(tmp_path: Path, monkeypatch) -> None:
    """Gigabytes of zeros fit in a layer of a few MB; resolving the User read them all."""
    from builder.lifecycle import run

    monkeypatch.setattr(run, "MAX_ACCOUNTS_FILE", 1 << 20, raising=False)
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_bytes(b"app:x:1000:1000::/home/app:/bin/sh\n" + b"\0" * (2 << 20))
    with pytest.raises(run.RunError, match="/etc/passwd is over 1048576 bytes"):
        run.resolve_user("app", tmp_path)
    (tmp_path / "etc" / "passwd").write_bytes(b"app:x:1000:1000::/home/app:/bin/sh\n")
    assert run.resolve_user("app", tmp_path) == (1000, 1000, "/home/app")


def test_the_build_images_passwd_is_read_inside_the_image(tmp_path: Path) -> None:
    """A build image's ``/etc/passwd -> /HOST/FILE`` was read on the host as the host's file (its
    fields became the build's HOME); a passwd that is not UTF-8 was a UnicodeDecodeError."""
    import os

    from builder.lifecycle.executors import home_of

    host_file = tmp_path / "host-passwd"
    host_file.write_text("cnb:x:1000:1000::/HOST-HOME:/bin/sh\n")
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    os.symlink(host_file, rootfs / "etc" / "passwd")
    assert home_of(rootfs, 1000) == "/home/cnb"
    (rootfs / "etc" / "passwd").unlink()
    (rootfs / "etc" / "passwd").write_bytes(b"cnb:x:1000:1000::/home/caf\xe9:/bin/sh\n")
    assert home_of(rootfs, 1000) == "/home/caf\ufffd"


def test_an_env_of_a_hundred_thousand_variables_is_named_as_the_cause(tmp_path: Path, env) -> None:
    """Each variable is bubblewrap arguments too: the error blamed the image's root directory
    ('1 entries, each a mount'), which was not it."""
    ref = _image(tmp_path, {"Env": [f"V{i}=x" for i in range(100_000)]})
    one_line_error(pallet("run", ref, env=env, check=False), "its environment 1000", "variables", "limit of 9000")


@pytest.mark.parametrize("uid", ["-5", "99999999999", "\uff11\uff10\uff10\uff10", " 1000", "4294967295"])
def test_a_build_images_cnb_user_that_is_no_id_is_a_one_line_error(tmp_path: Path, uid: str) -> None:
    """int() took what no kernel has as a uid ('-5', 2^36, fullwidth digits): the build went on
    to fail in chown or bubblewrap."""
    from builder.errors import PalletError
    from builder.lifecycle.pipeline import cnb_user
    from builder.oci.image import load_image

    push_layer_blobs(LayoutStore(tmp_path / "b"), [tar_of({"a": b"1"})], tag="t",
                     config_extra={"config": {"Env": [f"CNB_USER_ID={uid}", "CNB_GROUP_ID=1000"]}})
    with pytest.raises(PalletError, match="are not user and group ids"):
        cnb_user(load_image(LayoutStore(tmp_path / "b"), "t"))
