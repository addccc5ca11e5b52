"""The ``pallet`` command line: parsing and printing only; the work is done elsewhere.

Conventions every command follows: a mistake the user can make prints one line
``pallet: error: ...`` and exits 1 (usage errors exit 2), without a traceback unless
``--debug``; ``--json`` prints a machine-readable result on stdout; progress goes to stderr
only when it is a terminal.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable, NoReturn, Sequence

from builder import __version__
from builder.errors import PalletError, UsageError, for_terminal


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _common(json_flag: bool = True, remote: bool = True) -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks and details on errors")
    if json_flag:
        parent.add_argument("--json", action="store_true", help="print a machine-readable result")
    if remote:
        parent.add_argument("--insecure", action="store_true",
                            help="allow plain HTTP and unverified TLS for registries other than localhost")
        parent.add_argument("--creds", metavar="USER:PASSWORD",
                            help="registry credentials (default: from the Docker config file)")
    return parent


def _options(args: argparse.Namespace):  # -> StoreOptions
    from builder.oci.stores import StoreOptions

    creds = getattr(args, "creds", None)
    if creds is not None and ":" not in creds:
        raise UsageError("--creds must be USER:PASSWORD")
    return StoreOptions(insecure=getattr(args, "insecure", False), creds=creds)


def _progress(label: str, args: argparse.Namespace):
    from builder.progress import Progress

    return Progress(label, enabled=None if not args.json else False)


def _emit(args: argparse.Namespace, result: dict[str, Any], text: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        print(for_terminal(text, multiline=True, limit=None))


# -- commands -----------------------------------------------------------------

def cmd_copy(args: argparse.Namespace) -> int:
    from builder.oci import reference as refs
    from builder.oci.copy import copy_image
    from builder.oci.stores import open_store

    src_ref = refs.parse(args.src)
    dst_ref = refs.parse(args.dst)
    if dst_ref.digest:
        raise UsageError(f"{args.dst}: the destination takes a tag, not a digest (the digest is the source's)")
    options = _options(args)
    progress = _progress("copying", args)
    with open_store(src_ref, options) as src, open_store(dst_ref, options) as dst:
        try:
            desc, stats = copy_image(src, src_ref.ref, dst, dst_ref.tag or refs.DEFAULT_TAG,
                                     jobs=args.jobs, progress=progress)
        finally:
            progress.close()
    printed = dst_ref.at_digest(desc.digest)
    _emit(args, {"reference": printed, "digest": desc.digest, "mediaType": desc.media_type,
                 "blobs": {"copied": stats.copied, "skipped": stats.skipped, "mounted": stats.mounted},
                 "bytesCopied": stats.bytes}, printed)
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from builder.oci import reference as refs
    from builder.oci.image import load_image
    from builder.oci.inspect import describe, render_text
    from builder.oci.model import Platform
    from builder.oci.stores import open_store

    ref = refs.parse(args.ref)
    platform = Platform.parse(args.platform) if args.platform else None
    with open_store(ref, _options(args)) as store:
        image = load_image(store, ref.ref, platform)
        info = describe(image, str(ref))
    _emit(args, info, render_text(info))
    return 0


def jobs_count(text: str) -> int:
    """``--jobs``: a count of parallel transfers; 0 or less would run nothing, or one silently."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _kv(items: list[str] | None, flag: str, from_env: bool = False) -> dict[str, str]:
    """KEY=VALUE items; with ``from_env``, a bare KEY takes our own value (skipped when unset),
    as ``docker run -e KEY`` does: a secret need not be on a command line ``ps`` shows."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if from_env and not sep and key:
            if key in os.environ:
                out[key] = os.environ[key]
            continue
        shown = f"{key}=..." if sep else item   # never the value: a secret, in a CI log
        if not sep or not key:
            raise UsageError(f"{flag} {shown!r}: expected KEY=VALUE")
        if "\0" in key or "/" in key or key in (".", ".."):  # also a file name, in a build's platform dir
            raise UsageError(f"{flag} {shown!r}: {key!r} is not a variable name")
        out[key] = value
    return out


def _argv(value: str | None, flag: str, allow_path: bool) -> tuple[str, ...] | None:
    if value is None:
        return None
    if value.lstrip().startswith("["):
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if not isinstance(parsed, list) or not all(isinstance(x, str) for x in parsed):
            raise UsageError(f"{flag} {value!r}: expected a JSON array of strings, e.g. [\"/bin/app\", \"--serve\"]")
        return tuple(parsed)
    if not allow_path:
        raise UsageError(f"{flag} {value!r}: expected a JSON array of strings, e.g. [\"--port\", \"8080\"]")
    return (value,)


#: The largest Linux uid/gid (uid_t is 32 bits; 4294967295 is (uid_t)-1, "no change").
MAX_ID = 4294967294


def _owner(text: str) -> tuple[int, int]:
    """``UID:GID`` for a layer's files: ids a runtime can give them (a larger one built an image
    no runtime could unpack: its chown fails)."""
    m = re.fullmatch(r"([0-9]+):([0-9]+)", text)
    if not m or max(int(m[1]), int(m[2])) > MAX_ID:
        raise UsageError(f"--owner {text!r}: expected UID:GID, each 0 to {MAX_ID}, e.g. 1000:1000")
    return int(m[1]), int(m[2])


def cmd_append(args: argparse.Namespace) -> int:
    from builder.oci import reference as refs
    from builder.oci.append import append
    from builder.oci.mutate import ConfigChanges

    base = refs.parse(args.base, allow_scratch=True)
    dst = refs.parse(args.dst)
    owner = _owner(args.owner) if args.owner else (0, 0)
    if args.workdir and not args.workdir.startswith("/"):
        # a runtime refuses a relative working directory (runc: "cwd must be an absolute path")
        raise UsageError(f"--workdir {args.workdir!r}: expected an absolute path, e.g. /app")
    changes = ConfigChanges(
        entrypoint=_argv(args.entrypoint, "--entrypoint", allow_path=True),
        cmd=_argv(args.cmd, "--cmd", allow_path=False),
        env=_kv(args.env, "--env"),
        working_dir=args.workdir,
        user=args.user,
        labels=_kv(args.label, "--label"),
    )
    progress = _progress("uploading", args)
    try:
        result = append(base, Path(args.dir), dst, changes, owner=owner, compression=args.compression,
                        options=_options(args), progress=progress)
    finally:
        progress.close()
    printed = dst.at_digest(result.descriptor.digest)
    _emit(args, {"reference": printed, "digest": result.descriptor.digest,
                 "layer": {"digest": result.layer.digest, "diffID": result.diff_id, "size": result.layer.size},
                 "baseBlobs": {"copied": result.stats.copied, "skipped": result.stats.skipped,
                               "mounted": result.stats.mounted}},
          printed)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from builder.lifecycle.run import RunRequest, run_image
    from builder.lifecycle.sandbox import Interrupted

    if not 0 < args.port < 65536:
        raise UsageError(f"-p {args.port}: expected a port number, 1 to 65535")
    request = RunRequest(process=args.process, port=args.port, env=_kv(args.env, "--env", from_env=True),
                         args=tuple(args.args) if args.args is not None else None, network=args.network)
    try:
        from builder.oci.model import Platform

        platform = Platform.parse(args.platform) if args.platform else None
        return run_image(args.ref, request, docker=args.docker, options=_options(args), platform=platform)
    except Interrupted as exc:
        print("pallet: interrupted", file=sys.stderr)
        return exc.exit_code


class _RunParser(_Parser):
    """``pallet run``'s parser: everything after the first ``--`` is the app's arguments, as
    given (argparse alone would take the first of them for the optional PROCESS), and options
    may come between REF and PROCESS (parsed intermixed)."""

    _inner = False

    def parse_known_args(self, args=None, namespace=None):  # noqa: ANN001, ANN201
        if self._inner:
            return super().parse_known_args(args, namespace)
        args = list(sys.argv[1:] if args is None else args)
        app_args = None
        if "--" in args:
            cut = args.index("--")
            args, app_args = args[:cut], args[cut + 1:]
        self._inner = True
        try:
            namespace, rest = self.parse_known_intermixed_args(args, namespace)
        finally:
            self._inner = False
        namespace.args = app_args
        return namespace, rest


# -- parser -------------------------------------------------------------------

#: Commands registered by other modules (each imported only when its command runs).
_COMMAND_MODULES = {
    "build": "cli_build", "detect": "cli_build", "rebase": "cli_rebase", "stack": "cli_stack",
    "builder": "cli_builder", "prune": "cli_prune", "apt": "cli_apt",
    **{name: "cli_supply" for name in ("keygen", "sign", "verify", "sbom", "promote", "audit")},
}


def _command_in(argv: Sequence[str]) -> str | None:
    for arg in argv:
        if arg == "--":
            return None
        if not arg.startswith("-"):
            return arg
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; given ``argv``, only the sub-command it names is registered in full (with the
    core ones), so a build does not import every command's module before it starts."""
    parser = _Parser(prog="pallet", description="Source directory to a reproducible, signed OCI image.")
    parser.add_argument("--version", action="version", version=f"pallet {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and details on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    refs_help = ("references: oci:PATH[:TAG], docker://HOST/REPO[:TAG|@DIGEST], docker-daemon:NAME[:TAG], "
                 "docker-archive:PATH[:NAME:TAG], or NAME[:TAG] in the local store")

    p = sub.add_parser("copy", parents=[_common()], help="copy an image between stores, by digest",
                       description="Copy an image between any two stores; blobs already there are skipped. "
                                   + refs_help)
    p.add_argument("src", metavar="SRC")
    p.add_argument("dst", metavar="DST")
    p.add_argument("--jobs", type=jobs_count, default=4, help="blobs transferred at once (default 4)")
    p.set_defaults(func=cmd_copy)

    p = sub.add_parser("inspect", parents=[_common()], help="show an image's manifest, config and layers",
                       description="Show an image's digest, platform, layers and config. " + refs_help)
    p.add_argument("ref", metavar="REF")
    p.add_argument("--platform", help="OS/ARCH[/VARIANT] to pick from an index (default: this machine's)")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("append", parents=[_common()], help="add a reproducible layer made from a directory",
                       description="Make a new image: BASE (any store, or 'scratch') plus one reproducible "
                                   "layer made from DIR. BASE's config is kept unless a flag overrides it. "
                                   + refs_help)
    p.add_argument("base", metavar="BASE")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("dst", metavar="DST")
    p.add_argument("--entrypoint", metavar="PATH|JSON-ARRAY")
    p.add_argument("--cmd", metavar="JSON-ARRAY")
    p.add_argument("--env", action="append", metavar="K=V")
    p.add_argument("--workdir", metavar="DIR")
    p.add_argument("--user", metavar="USER")
    p.add_argument("--label", action="append", metavar="K=V")
    p.add_argument("--owner", metavar="UID:GID", help="owner of every file in the layer (default 0:0)")
    p.add_argument("--compression", choices=["gzip", "zstd", "none"], default="gzip")
    p.set_defaults(func=cmd_append)

    p = sub.add_parser("run", parents=[_common(json_flag=False)],
                       help="run an image's process: daemonless in a sandbox, or in Docker",
                       usage="pallet run REF [PROCESS] [-p PORT] [--network NET] [--env K=V]... [--docker] [-- ARGS...]",
                       description="Run an image's entrypoint, or its buildpack process type PROCESS "
                                   "(/cnb/process/PROCESS), without a daemon: in a bubblewrap sandbox over "
                                   "the unpacked image, as its user, with its env and working dir; the "
                                   "image's files are read-only and /tmp is writable. The app has a network "
                                   "of its own (through pasta): -p PORT publishes PORT on the host's "
                                   "127.0.0.1 and sets PORT, the port the app is asked to listen on; "
                                   "--network host shares the host's. ARGS after -- replace the image's "
                                   "arguments. Ctrl-C stops the app. " + refs_help)
    p.__class__ = _RunParser  # only to split at '--'; see _RunParser
    p.add_argument("ref", metavar="REF")
    p.add_argument("process", metavar="PROCESS", nargs="?", help="a process type, e.g. web or worker")
    p.add_argument("-p", "--port", type=int, default=8080,
                   help="PORT for the app, published on the host's 127.0.0.1 (default 8080)")
    p.add_argument("--network", choices=("private", "host", "none"), default="private",
                   help="private: a network of its own (default); host: the host's; none: loopback only")
    p.add_argument("--env", action="append", metavar="K=V",
                   help="set an environment variable; a bare K takes pallet's own value (kept off the command line)")
    p.add_argument("--docker", action="store_true",
                   help="run it in the Docker engine instead (docker run --rm)")
    p.add_argument("--platform", help="OS/ARCH[/VARIANT] to pick from an index (default: this machine's; "
                                      "a foreign one runs under QEMU)")
    p.set_defaults(func=cmd_run, args=None)

    import importlib

    # cli_build: build, detect; cli_rebase; cli_stack: stack lock|build|packages; cli_supply:
    # keygen|sign|verify|sbom|promote|audit. All of them when the command is unknown (for help).
    wanted = _COMMAND_MODULES.get(_command_in(argv) or "") if argv is not None else None
    for name in ("cli_build", "cli_rebase", "cli_stack", "cli_supply", "cli_builder", "cli_prune", "cli_apt"):
        if wanted is None or name == wanted:
            importlib.import_module(f"builder.{name}").register(sub, _common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or bool(os.environ.get("PALLET_DEBUG"))
    try:
        parser = build_parser(argv)
        args = parser.parse_args(argv)
        if not getattr(args, "command", None):
            parser.print_help()
            return 2
        func: Callable[[argparse.Namespace], int] = args.func
        return func(args)
    except PalletError as exc:
        if debug:
            raise
        print(f"pallet: error: {for_terminal(str(exc), multiline=exc.multiline)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("pallet: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        if debug:
            raise
        where = f": {exc.filename}" if exc.filename else ""
        print(f"pallet: error: {for_terminal(f'{exc.strerror or exc}{where}')}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
