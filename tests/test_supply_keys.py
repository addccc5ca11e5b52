"""Keys: cosign's encrypted key format (checked against libsodium and go-securesystemslib),
``pallet keygen``, passwords that never leak."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from builder.supply import keys, secretbox
from builder.supply.errors import KeyFileError, PasswordError
from tests.cli import ROOT, pallet
from tests.supplykit import PASSWORD

# go-securesystemslib's own test vectors (encrypted/encrypted_test.go): its Marshal of the bytes
# "reallyimportant" (hence a JSON string of their base64) under the passphrase "supersecret",
# with the legacy, standard and OWASP scrypt strengths.
GO_VECTORS = [
    b'{"kdf":{"name":"scrypt","params":{"N":32768,"r":8,"p":1},"salt":"WO3mVvyTwJ9vwT5/Tk5OW5WPIBUofMjcpEfrLnfY4uA="},"cipher":{"name":"nacl/secretbox","nonce":"tCy7HcTFr4uxv4Nrg/DWmncuZ148U1MX"},"ciphertext":"08n43p5G5yviPEZpO7tPPF4aZQkWiWjkv4taFdhDBA0tamKH4nw="}',
    b'{"kdf":{"name":"scrypt","params":{"N":65536,"r":8,"p":1},"salt":"FhzPOt9/bJG4PTq6lQ6ecG6GzaOuOy/ynG5+yRiFlNs="},"cipher":{"name":"nacl/secretbox","nonce":"aw1ng1jHaDz/tQ7V2gR9O2+IGQ8xJEuE"},"ciphertext":"HycvuLZL4sYH0BrYTh4E/H20VtAW6u5zL5Pr+IBjYLYnCPzDkq8="}',
]


@pytest.mark.parametrize("size", [0, 1, 31, 32, 33, 64, 65, 138, 1000])
def test_secretbox_matches_libsodium(size):
    nacl_secret = pytest.importorskip("nacl.secret")
    key, nonce, message = os.urandom(32), os.urandom(24), os.urandom(size)
    ours = secretbox.seal(message, nonce, key)
    assert ours == nacl_secret.SecretBox(key).encrypt(message, nonce).ciphertext
    assert secretbox.open_box(ours, nonce, key) == message
    tampered = bytearray(ours)
    tampered[-1 if size else 0] ^= 1
    with pytest.raises(secretbox.SecretBoxError):
        secretbox.open_box(bytes(tampered), nonce, key)


@pytest.mark.parametrize("vector", GO_VECTORS)
def test_decrypts_go_securesystemslib_output(vector):
    plain = keys.decrypt_envelope(vector, b"supersecret")
    assert base64.b64decode(json.loads(plain)) == b"reallyimportant"
    with pytest.raises(PasswordError):
        keys.decrypt_envelope(vector, b"supersecreT")


def test_refuses_unknown_scrypt_parameters():
    # go-securesystemslib's TestUnsupportedKDFParameters vector: N=99 r=99 p=99.
    bad = (b'{"kdf":{"name":"scrypt","params":{"N":99,"r":99,"p":99},"salt":"cZFcQJdwPhPyhU1R4qkl0qVOIjZd4V/7LYYAavq166k="},'
           b'"cipher":{"name":"nacl/secretbox","nonce":"7vhRS7j0hEPBWV05skAdgLj81AkGeE7U"},'
           b'"ciphertext":"6WYU/YSXVbYzl/NzaeAzmjLyfFhOOjLc0d8/GFV0aBFdJvyCcXc="}')
    with pytest.raises(KeyFileError, match="unsupported scrypt parameters"):
        keys.decrypt_envelope(bad, b"supersecret")


@pytest.mark.parametrize("n", ["1e999", "-1e999", '"x"', "[1]", "null"])
def test_scrypt_parameters_of_the_wrong_kind_are_an_unreadable_key(n):
    """"N": 1e999 is infinity to JSON, and int() of it an OverflowError traceback (pallet sign)."""
    bad = (b'{"kdf":{"name":"scrypt","params":{"N":%s,"r":8,"p":1},"salt":""},'
           b'"cipher":{"name":"nacl/secretbox","nonce":""},"ciphertext":""}' % n.encode())
    with pytest.raises(KeyFileError, match="not a readable encrypted key"):
        keys.decrypt_envelope(bad, b"supersecret")


def test_private_key_file_is_cosigns_format():
    key = keys.generate()
    pem = keys.encrypted_private_pem(key, b"pw")
    text = pem.decode()
    assert text.startswith("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
    body = base64.b64decode("".join(text.splitlines()[1:-1]))
    doc = json.loads(body)
    assert list(doc) == ["kdf", "cipher", "ciphertext"]
    assert doc["kdf"]["name"] == "scrypt" and doc["kdf"]["params"] == {"N": 32768, "r": 8, "p": 1}
    assert doc["cipher"]["name"] == "nacl/secretbox"
    assert len(base64.b64decode(doc["kdf"]["salt"])) == 32 and len(base64.b64decode(doc["cipher"]["nonce"])) == 24
    # Inside: the PKCS#8 DER of the key, as cosign's x509.MarshalPKCS8PrivateKey writes it.
    der = keys.decrypt_envelope(body, b"pw")
    loaded = serialization.load_der_private_key(der, None)
    assert keys.key_id(loaded) == keys.key_id(key)
    assert keys.key_id(keys.load_private_key(pem, b"pw")) == keys.key_id(key)
    with pytest.raises(PasswordError) as err:
        keys.load_private_key(pem, b"wrong")
    assert "wrong" not in str(err.value).replace("wrong password", "")


def test_other_private_key_forms_are_read():
    key = ec.generate_private_key(ec.SECP256R1())
    pkcs8 = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.BestAvailableEncryption(b"pw"))
    assert keys.needs_password(pkcs8)
    assert keys.key_id(keys.load_private_key(pkcs8, b"pw")) == keys.key_id(key)
    plain = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                              serialization.NoEncryption())
    assert not keys.needs_password(plain)
    assert keys.key_id(keys.load_private_key(plain, None)) == keys.key_id(key)
    with pytest.raises(KeyFileError, match="public key"):
        keys.load_public_key(plain)


def test_sign_and_verify_bytes():
    key = keys.generate()
    sig = keys.sign(key, b"payload")
    pub = keys.load_public_key(keys.public_pem(key))
    assert keys.verify(pub, sig, b"payload")
    assert not keys.verify(pub, sig, b"payload!")
    assert not keys.verify(keys.generate().public_key(), sig, b"payload")
    assert not keys.verify(pub, b"garbage", b"payload")


def test_password_from_env_else_prompt_else_clear_error():
    assert keys.read_password(env={"PALLET_PASSWORD": "s3cret"}) == b"s3cret"
    assert keys.read_password(env={"PALLET_PASSWORD": ""}) == b""  # as cosign allows
    asked = iter(["pw1", "pw1"])
    assert keys.read_password(confirm=True, env={}, interactive=True, prompt=lambda _: next(asked)) == b"pw1"
    differ = iter(["pw1", "pw2"])
    with pytest.raises(PasswordError, match="differ"):
        keys.read_password(confirm=True, env={}, interactive=True, prompt=lambda _: next(differ))
    with pytest.raises(PasswordError, match="PALLET_PASSWORD"):
        keys.read_password(env={}, interactive=False)


def test_keygen_command(tmp_path):
    prefix = tmp_path / "release"
    out = pallet("keygen", "--output-key-prefix", str(prefix), "--json", env={"PALLET_PASSWORD": PASSWORD})
    info = json.loads(out.stdout)
    key_file, pub_file = tmp_path / "release.key", tmp_path / "release.pub"
    assert info == {"privateKey": str(key_file), "publicKey": str(pub_file), "keyId": info["keyId"]}
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert pub_file.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert PASSWORD not in out.stdout + out.stderr
    assert PASSWORD.encode() not in key_file.read_bytes()
    key = keys.read_private_key(key_file, lambda: PASSWORD.encode())
    assert keys.key_id(key) == info["keyId"] == keys.read_public_key(pub_file).id

    # Never overwritten without --force; with it, a new pair.
    before = key_file.read_bytes()
    again = pallet("keygen", "--output-key-prefix", str(prefix), env={"PALLET_PASSWORD": PASSWORD}, check=False)
    assert again.returncode == 1 and "already exists" in again.stderr and "--force" in again.stderr
    assert key_file.read_bytes() == before
    pallet("keygen", "--output-key-prefix", str(prefix), "--force", env={"PALLET_PASSWORD": PASSWORD})
    assert key_file.read_bytes() != before and stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_keygen_without_password_or_terminal_fails_clearly(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PALLET_PASSWORD"}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run([sys.executable, "-m", "builder", "keygen", "--output-key-prefix", str(tmp_path / "k")],
                          env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("pallet: error: ") and "PALLET_PASSWORD" in proc.stderr
    assert not (tmp_path / "k.key").exists()
