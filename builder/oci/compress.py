"""Deterministic layer compressors (``none``, ``gzip``, ``zstd``) behind one small interface.

A layer's digest is the hash of its *compressed* bytes, so a reproducible image needs a
compressor whose output depends on the input bytes alone: not on the machine's core count,
the thread count, or how the caller happened to slice its writes. Every compressor here
pushes its output to a ``sink`` callable, always from the thread that calls ``write``/``close``,
so the caller can hash and store the output without locks.

Decompression (``open_decompressed``) lives here too, so the layer reader and writer agree
on what a compression name and its magic bytes mean.

Output is bit-identical for a given zlib / libzstd version (zlib 1.2.13 and libzstd 1.5.x
on Debian bookworm); a different library release may choose different matches. That is
the same promise every reproducible-build tool can make, and why the tests pin bytes only
within one run, never as constants.
"""

from __future__ import annotations

import collections
import gzip
import os
import struct
import threading
import zlib
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import BinaryIO, Callable, Protocol

import zstandard

from builder.errors import PalletError

#: Compression names, as used in layer options and by ``mediatypes.compression_of``.
GZIP = "gzip"
ZSTD = "zstd"
NONE = "none"
COMPRESSIONS = (GZIP, ZSTD, NONE)

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

#: Input bytes per independently compressed gzip chunk. A constant on purpose: the chunk
#: boundaries shape the output, so they must never depend on the machine.
GZIP_CHUNK_SIZE = 1 << 20
GZIP_LEVEL = 6
#: The level of the layers an app build writes (its launch layers, app, launcher, SBOM and config
#: layers, and the cache image's): deflate's fastest, as go-containerregistry writes layers by
#: default (``gzip.BestSpeed``), and so the CNB lifecycle and ko. A build writes these on every
#: change, so export time is worth more than ~10% of their compressed size. Stack images are
#: built once and pulled by every app on them: they keep ``GZIP_LEVEL``.
APP_GZIP_LEVEL = 1
_WINDOW = 32 * 1024  # deflate's window: how much of the previous chunk primes the next

# Fixed gzip header: no file name, MTIME 0, XFL 0, OS 255 ("unknown", as Go's
# compress/gzip and Python's gzip write it), so the header never depends on the machine.
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"

ZSTD_LEVEL = 3

#: Receives compressed output. The buffer is only valid during the call (it may be reused).
Sink = Callable[[bytes | memoryview], None]


class Compressor(Protocol):
    """What the layer writer needs from a compressor."""

    name: str

    def write(self, data: bytes | memoryview) -> None:
        """Compress ``data``; may call the sink. ``data`` may be reused after the call returns."""

    def close(self) -> None:
        """Compress what is left and end the stream; the sink has seen every byte afterwards."""


class NoCompressor:
    """``none``: the tar bytes pass straight through."""

    name = NONE

    def __init__(self, sink: Sink) -> None:
        self._sink = sink

    def write(self, data: bytes | memoryview) -> None:
        if len(data):
            self._sink(data)

    def close(self) -> None:
        pass


# -- gzip --------------------------------------------------------------------------------

_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def cores() -> int:
    """Cores this process may run on (its CPU affinity, as a container limits it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def shared_pool() -> ThreadPoolExecutor:
    """One process-wide deflate pool, one thread per core.

    Shared so that several layers written at once split the cores between them instead of
    each starting its own threads. The worker count only changes speed, never the bytes.
    """
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=cores(), thread_name_prefix="pallet-deflate")
        return _pool


def _deflate_chunk(data: bytes, zdict: bytes, last: bool, level: int = GZIP_LEVEL) -> bytes:
    """Raw deflate of one chunk, primed with the previous chunk's last 32 KiB.

    Z_SYNC_FLUSH ends a middle chunk on a byte boundary with a non-final block, so the raw
    streams of consecutive chunks concatenate into one valid deflate stream; the last chunk
    ends with Z_FINISH. zlib releases the GIL while it works, so chunks run in parallel.
    """
    if zdict:
        comp = zlib.compressobj(level, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY, zdict)
    else:
        comp = zlib.compressobj(level, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY)
    return comp.compress(data) + comp.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)


class GzipCompressor:
    """Parallel, deterministic gzip: one gzip member made of independently deflated chunks.

    This is what pigz does. Input is cut into ``GZIP_CHUNK_SIZE`` chunks; each is deflated
    on its own thread, primed with the 32 KiB before it, so the ratio is within a few bytes
    per MiB of single-threaded ``gzip -6``. One header and one trailer (CRC32 and ISIZE of
    the whole input) wrap the lot, so every reader sees an ordinary single-member gzip file.

    Why one member rather than concatenated gzip members (one per chunk): members could not
    share the 32 KiB dictionary, which costs ratio, and although multi-member files are valid
    gzip, some tools stop after the first member. The CRC of the whole input is computed on
    the calling thread as chunks pass (zlib.crc32 runs at GB/s and releases the GIL).

    Memory is bounded: at most ``max_inflight`` chunks are being compressed or waiting to be
    written, whatever the size of the layer. Output is emitted in input order, from the
    calling thread.
    """

    name = GZIP

    def __init__(self, sink: Sink, *, executor: Executor | None = None,
                 max_inflight: int | None = None, level: int = GZIP_LEVEL) -> None:
        if not 1 <= level <= 9:
            raise ValueError(f"gzip level {level}: use 1-9")
        self._sink = sink
        self._level = level
        self._executor = executor if executor is not None else shared_pool()
        workers = getattr(self._executor, "_max_workers", cores())
        self._max_inflight = max_inflight or max(2, 2 * workers)
        self._pending = bytearray()
        self._zdict = b""
        self._crc = 0
        self._size = 0
        self._inflight: collections.deque[Future[bytes]] = collections.deque()
        self._closed = False
        self._sink(_GZIP_HEADER)

    def write(self, data: bytes | memoryview) -> None:
        if self._closed:
            raise ValueError("write to a closed compressor")
        view = memoryview(data).cast("B")
        n = len(view)
        if not n:
            return
        self._crc = zlib.crc32(view, self._crc)
        self._size += n
        pos = 0
        if self._pending:
            take = min(GZIP_CHUNK_SIZE - len(self._pending), n)
            self._pending += view[:take]
            pos = take
            if len(self._pending) == GZIP_CHUNK_SIZE:
                self._submit(bytes(self._pending), last=False)
                self._pending = bytearray()
        while n - pos >= GZIP_CHUNK_SIZE:
            self._submit(bytes(view[pos:pos + GZIP_CHUNK_SIZE]), last=False)
            pos += GZIP_CHUNK_SIZE
        if pos < n:
            self._pending += view[pos:]

    def close(self) -> None:
        if self._closed:
            return
        # The last chunk may be empty (input a multiple of the chunk size, or no input at
        # all); deflate then writes an empty final block, which is still deterministic.
        self._submit(bytes(self._pending), last=True)
        self._pending = bytearray()
        while self._inflight:
            self._sink(self._inflight.popleft().result())
        self._sink(struct.pack("<II", self._crc & 0xFFFFFFFF, self._size & 0xFFFFFFFF))
        self._closed = True

    def abort(self) -> None:
        """Drop queued work after an error; the output is incomplete and must be discarded."""
        self._closed = True
        for fut in self._inflight:
            fut.cancel()
        self._inflight.clear()

    def _submit(self, chunk: bytes, *, last: bool) -> None:
        self._inflight.append(self._executor.submit(_deflate_chunk, chunk, self._zdict, last, self._level))
        self._zdict = chunk[-_WINDOW:] if len(chunk) >= _WINDOW else (self._zdict + chunk)[-_WINDOW:]
        # Emit what is ready, in order; block only when the in-flight bound is reached.
        while self._inflight and self._inflight[0].done():
            self._sink(self._inflight.popleft().result())
        while len(self._inflight) >= self._max_inflight:
            self._sink(self._inflight.popleft().result())


# -- zstd --------------------------------------------------------------------------------


def zstd_threads() -> int:
    """Worker threads for zstd: one per core. Any value >= 1 gives the same bytes.

    libzstd in multithreaded mode cuts the input into jobs whose size depends on the
    compression parameters only, so the output is identical for 1, 2 or 64 workers (the
    tests check 1 vs 2 vs 4). threads=0 is a *different* single-threaded code path with a
    different output, which is why we never use it, even on a one-core machine.
    """
    return cores()


class ZstdCompressor:
    """zstd level 3, multithreaded, content checksum on, no content size, no dictionary id.

    Content size is never written (we stream, so it would depend on how input arrives);
    the checksum flag is always set, so readers verify the frame.
    """

    name = ZSTD

    def __init__(self, sink: Sink, *, threads: int | None = None) -> None:
        self._sink = sink
        cctx = zstandard.ZstdCompressor(
            level=ZSTD_LEVEL,
            threads=threads if threads is not None else zstd_threads(),
            write_checksum=True,
            write_content_size=False,
            write_dict_id=False,
        )
        self._cobj = cctx.compressobj()
        self._closed = False

    def write(self, data: bytes | memoryview) -> None:
        if self._closed:
            raise ValueError("write to a closed compressor")
        out = self._cobj.compress(data)
        if out:
            self._sink(out)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        out = self._cobj.flush(zstandard.COMPRESSOBJ_FLUSH_FINISH)
        if out:
            self._sink(out)


class UnknownCompressionError(PalletError):
    """A compression name we do not write or read."""


def check_compression(name: str) -> str:
    """Return ``name`` if it is one of COMPRESSIONS, else raise with the valid choices."""
    if name not in COMPRESSIONS:
        raise UnknownCompressionError(
            f"unknown layer compression {name!r}: use one of {', '.join(COMPRESSIONS)}")
    return name


def new_compressor(name: str, sink: Sink, *, gzip_level: int = GZIP_LEVEL) -> Compressor:
    """A compressor of the given kind (``gzip``, ``zstd`` or ``none``) writing to ``sink``."""
    check_compression(name)
    if name == GZIP:
        return GzipCompressor(sink, level=gzip_level)
    if name == ZSTD:
        return ZstdCompressor(sink)
    return NoCompressor(sink)


def compress_bytes(data: bytes, name: str) -> bytes:
    """The whole compressed stream for ``data``, in memory: for small blobs and tests."""
    out: list[bytes] = []
    comp = new_compressor(name, lambda b: out.append(bytes(b)))
    comp.write(data)
    comp.close()
    return b"".join(out)


# -- reading -----------------------------------------------------------------------------


def sniff(prefix: bytes) -> str:
    """The compression of a stream from its first bytes: ``gzip``, ``zstd`` or ``none``."""
    if prefix.startswith(GZIP_MAGIC):
        return GZIP
    if prefix.startswith(ZSTD_MAGIC):
        return ZSTD
    return NONE


class _Prefixed:
    """A stream with some bytes already read from its front put back."""

    def __init__(self, prefix: bytes, stream: BinaryIO) -> None:
        self._prefix = prefix
        self._stream = stream

    def read(self, n: int = -1) -> bytes:
        if self._prefix:
            if n is None or n < 0:
                data, self._prefix = self._prefix + self._stream.read(), b""
                return data
            data, self._prefix = self._prefix[:n], self._prefix[n:]
            if len(data) < n:
                data += self._stream.read(n - len(data))
            return data
        return self._stream.read(n)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._stream.close()


def _read_prefix(stream: BinaryIO, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def open_decompressed(stream: BinaryIO, compression: str | None = None) -> BinaryIO:
    """A stream of the uncompressed bytes of ``stream``.

    ``compression`` is ``gzip``, ``zstd`` or ``none``; ``None`` detects it from the magic
    bytes (media types lie more often than magic does: Docker writes gzip media types for
    uncompressed layers). Multi-member gzip and multi-frame zstd are read to the end.
    """
    if compression is None:
        return open_detected(stream)[1]
    check_compression(compression)
    if compression == GZIP:
        return gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]
    if compression == ZSTD:
        return zstandard.ZstdDecompressor().stream_reader(
            stream, read_size=1 << 20, read_across_frames=True)
    return stream


def open_detected(stream: BinaryIO) -> tuple[str, BinaryIO]:
    """(compression found from the magic bytes, stream of the uncompressed bytes)."""
    prefix = _read_prefix(stream, 4)
    compression = sniff(prefix)
    return compression, open_decompressed(_Prefixed(prefix, stream), compression)  # type: ignore[arg-type]
