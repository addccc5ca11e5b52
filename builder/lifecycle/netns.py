"""A sandbox's own network: pasta (from passt, what rootless Podman uses) connects the network
namespace bubblewrap made for a step to the outside, and forwards published ports.

What the step gets: outside traffic through pasta's user-mode stack (addresses and routes
copied from the host), and each ``Publish`` as a port on the host's loopback. What it does
not get: the host's loopback services (``-T none -U none``: nothing in the namespace is
forwarded to the host's ports; ``--no-map-gw``: the gateway address is not the host either),
nor any port it opens that was not published (``-t none`` otherwise, no ``auto``).

pasta runs as our child in the foreground, killed when the step ends, and by the kernel
(``setpriv --pdeathsig``) if pallet dies first: an old pasta does not notice its namespace is
gone and would keep the published ports. Readiness: pasta writes its pid file once it has set
the namespace up; the file is a pipe to us, so no polling, and its end is pasta's failure.
"""

from __future__ import annotations

import fcntl
import os
import select
import shutil
import subprocess
import tempfile
from typing import Callable

from builder.errors import PalletError


#: ioctl on a namespace file: the user namespace that owns it (linux/nsfs.h, _IO(0xb7, 0x1)).
NS_GET_USERNS = 0xB701


class NetworkError(PalletError):
    """The step's own network cannot be set up (no pasta, or pasta failed)."""


def find_pasta() -> str:
    path = shutil.which("pasta")
    if path is None:
        raise NetworkError("pasta is not installed (Debian/Ubuntu: apt-get install passt); it gives the app "
                           "its own network namespace. Or share the host's: --network host")
    return path


def pasta_command(pasta: str, netns: str, userns: str, publish: tuple, pid_file: str, *, euid: int) -> list[str]:
    """pasta's command line for the network namespace ``netns`` owned by ``userns`` (pure)."""
    cmd = [pasta, "--foreground", "--quiet", "--config-net", "--pid", pid_file]
    for port in publish:
        cmd += ["--tcp-ports", f"{port.host_ip}/{port.host_port}:{port.port}"]
    if not publish:
        cmd += ["--tcp-ports", "none"]
    cmd += ["--udp-ports", "none", "--tcp-ns", "none", "--udp-ns", "none", "--no-map-gw"]
    if euid == 0:
        # As root, pasta would switch to nobody before joining the sandbox's namespaces, which
        # nobody may not do. It still drops every capability and isolates itself.
        cmd += ["--runas", "0:0"]
    cmd += ["--netns", netns, "--userns", userns]
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--", *cmd] if setpriv else cmd


def wait_for_loopback(pid: int, limit: float = 2.0) -> bool:
    """Wait (bounded) until bubblewrap's child has given the new namespace its loopback address.

    bubblewrap configures ``lo`` itself (127.0.0.1, then up) right after it makes the network
    namespace, and pasta configures the same namespace: started during that, pasta's netlink
    requests collide with bubblewrap's (``bwrap: loopback: Failed RTM_NEWADDR``, seen under
    load). The address shows in the namespace's local routing table; the link is brought up in
    the very next request, so a few milliseconds more cover it. False if the limit passed.
    """
    import time

    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/net/fib_trie", "rb") as f:
                if b"127.0.0.1" in f.read():
                    time.sleep(0.005)
                    return True
        except OSError:
            return False  # the sandbox is gone: its own error will say why
        time.sleep(0.002)
    return False


class Pasta:
    """pasta attached to a running sandbox's network; ``stop`` when the step is done."""

    def __init__(self, pasta: str, pid: int, publish: tuple) -> None:
        # The namespaces by file descriptor, not by pid: the step's process may by now be in
        # a user namespace nested in the one that owns its network (bubblewrap makes one when
        # the step's uid is not the first namespace's), and a pid can be reused.
        self._ns: list[int] = []
        self._read: int | None = None
        try:
            self._ns.append(os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC))
            self._ns.append(fcntl.ioctl(self._ns[0], NS_GET_USERNS))
        except OSError as exc:
            self._close_ns()
            raise NetworkError(f"cannot find the sandbox's network namespace: {exc.strerror or exc}") from None
        netns, userns = (f"/proc/self/fd/{fd}" for fd in self._ns)  # pasta's own, inherited
        # Its pid file is a pipe to us: ready when the pid comes, failed at end of file.
        self._read, ready_w = os.pipe()
        self._log = tempfile.TemporaryFile()
        try:
            self.proc = subprocess.Popen(
                pasta_command(pasta, netns, userns, publish, f"/proc/self/fd/{ready_w}", euid=os.geteuid()),
                stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log, env={}, process_group=0,
                pass_fds=(*self._ns, ready_w))
        except OSError as exc:
            self.stop()
            raise NetworkError(f"cannot start pasta: {exc.strerror or exc}") from None
        finally:
            os.close(ready_w)

    def wait_ready(self, interrupted: Callable[[], bool]) -> None:
        """Return once the namespace is configured; NetworkError (pasta's words) if it failed."""
        data = b""
        while not data.endswith(b"\n"):
            if interrupted():
                return
            ready, _, _ = select.select([self._read], [], [], 0.1)  # the timeout: to see a Ctrl-C
            if ready:
                chunk = os.read(self._read, 64)
                if not chunk:
                    self.proc.wait()
                    raise NetworkError(f"pasta could not set up the app's network ({self._why()}); "
                                       "or share the host's: --network host")
                data += chunk

    def _why(self) -> str:
        self._log.seek(0)
        lines = [line.strip() for line in self._log.read().decode(errors="replace").splitlines()]
        noise = ("Failed to send", "Don't run as root")
        useful = [line for line in lines if line and not line.startswith(noise)]
        return useful[-1] if useful else f"exit code {self.proc.returncode}"

    def stop(self) -> None:
        proc = getattr(self, "proc", None)
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._read is not None:
            os.close(self._read)
            self._read = None
        self._log.close()
        self._close_ns()

    def _close_ns(self) -> None:
        while self._ns:
            os.close(self._ns.pop())
