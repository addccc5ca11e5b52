"""NaCl ``secretbox`` (XSalsa20-Poly1305): the cipher of cosign's encrypted key files.

Neither the standard library nor ``cryptography`` has XSalsa20, and a key file is a few hundred
bytes, so the stream cipher is written out here from its specification (Bernstein, "Extending
the Salsa20 nonce", 2011); Poly1305 is ``cryptography``'s. Tests check it byte for byte
against libsodium (through PyNaCl) and against key files written by go-securesystemslib, the
library cosign uses. Nothing else in pallet encrypts: this exists only to read and write
cosign-compatible private keys without a native dependency.
"""

from __future__ import annotations

import struct

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.poly1305 import Poly1305

KEY_SIZE = 32
NONCE_SIZE = 24
TAG_SIZE = 16

_M = 0xFFFFFFFF
_SIGMA = struct.unpack("<4I", b"expand 32-byte k")
# Quarter-rounds of a double round: four columns, then four rows (indices a, b, c, d).
_DOUBLE_ROUND = ((0, 4, 8, 12), (5, 9, 13, 1), (10, 14, 2, 6), (15, 3, 7, 11),
                 (0, 1, 2, 3), (5, 6, 7, 4), (10, 11, 8, 9), (15, 12, 13, 14))


class SecretBoxError(ValueError):
    """The box does not open: wrong key, or the ciphertext was changed."""


def _rounds(state: list[int]) -> list[int]:
    x = list(state)
    for _ in range(10):
        for a, b, c, d in _DOUBLE_ROUND:
            t = (x[a] + x[d]) & _M
            x[b] ^= ((t << 7) | (t >> 25)) & _M
            t = (x[b] + x[a]) & _M
            x[c] ^= ((t << 9) | (t >> 23)) & _M
            t = (x[c] + x[b]) & _M
            x[d] ^= ((t << 13) | (t >> 19)) & _M
            t = (x[d] + x[c]) & _M
            x[a] ^= ((t << 18) | (t >> 14)) & _M
    return x


def _state(key: bytes, middle: tuple[int, int, int, int]) -> list[int]:
    k = struct.unpack("<8I", key)
    return [_SIGMA[0], *k[:4], _SIGMA[1], *middle, _SIGMA[2], *k[4:], _SIGMA[3]]


def hsalsa20(key: bytes, nonce16: bytes) -> bytes:
    """The 32-byte subkey XSalsa20 derives from a key and the first 16 bytes of its nonce."""
    x = _rounds(_state(key, struct.unpack("<4I", nonce16)))
    return struct.pack("<8I", x[0], x[5], x[10], x[15], x[6], x[7], x[8], x[9])


def _salsa20_stream(key: bytes, nonce8: bytes, length: int) -> bytes:
    n0, n1 = struct.unpack("<2I", nonce8)
    out = bytearray()
    counter = 0
    while len(out) < length:
        state = _state(key, (n0, n1, counter & _M, counter >> 32))
        mixed = _rounds(state)
        out += struct.pack("<16I", *((m + s) & _M for m, s in zip(mixed, state)))
        counter += 1
    return bytes(out[:length])


def xsalsa20_stream(key: bytes, nonce: bytes, length: int) -> bytes:
    if len(key) != KEY_SIZE or len(nonce) != NONCE_SIZE:
        raise ValueError("XSalsa20 takes a 32-byte key and a 24-byte nonce")
    return _salsa20_stream(hsalsa20(key, nonce[:16]), nonce[16:], length)


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "little") ^ int.from_bytes(b[:len(a)], "little")).to_bytes(len(a), "little")


def seal(message: bytes, nonce: bytes, key: bytes) -> bytes:
    """``crypto_secretbox``: the 16-byte Poly1305 tag followed by the ciphertext."""
    stream = xsalsa20_stream(key, nonce, 32 + len(message))
    ciphertext = _xor(message, stream[32:])
    return Poly1305.generate_tag(stream[:32], ciphertext) + ciphertext


def open_box(box: bytes, nonce: bytes, key: bytes) -> bytes:
    """``crypto_secretbox_open``; SecretBoxError if the tag does not match."""
    if len(box) < TAG_SIZE:
        raise SecretBoxError("ciphertext is shorter than its authentication tag")
    tag, ciphertext = box[:TAG_SIZE], box[TAG_SIZE:]
    stream = xsalsa20_stream(key, nonce, 32 + len(ciphertext))
    try:
        Poly1305.verify_tag(stream[:32], ciphertext, tag)
    except InvalidSignature:
        raise SecretBoxError("authentication failed: wrong key or altered ciphertext") from None
    return _xor(ciphertext, stream[32:])
