"""Key pair cryptography as Nova does it: fingerprints of SSH public keys
(MD5 of the key blob, colon-separated) and X.509 certificates (SHA-1), and
newly generated key pairs (RSA 2048, the private key in PEM)."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta

from onestack.common.errors import BadRequest


class InvalidKeypair(BadRequest):
    def __init__(self, reason: str) -> None:
        super().__init__(f"Keypair data is invalid: {reason}")


def _colons(hexdigest: str) -> str:
    return ":".join(a + b for a, b in zip(hexdigest[::2], hexdigest[1::2], strict=False))


def ssh_fingerprint(public_key: str) -> str:
    from cryptography.hazmat.primitives import serialization

    try:
        serialization.load_ssh_public_key(public_key.encode("utf-8"))
        blob = base64.b64decode(public_key.split(" ")[1])
    except Exception:
        raise InvalidKeypair("failed to generate fingerprint") from None
    return _colons(hashlib.md5(blob, usedforsecurity=False).hexdigest())


def x509_fingerprint(pem: str) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    try:
        cert = x509.load_pem_x509_certificate(pem.encode("utf-8"))
        digest = cert.fingerprint(hashes.SHA1())  # noqa: S303 - Nova's fingerprint
    except Exception as exc:
        raise InvalidKeypair(
            f"failed to generate X509 fingerprint. Error message: {exc}") from None
    return _colons(digest.hex())


def fingerprint(public_key: str, key_type: str) -> str:
    return x509_fingerprint(public_key) if key_type == "x509" else ssh_fingerprint(public_key)


def generate(key_type: str, user_id: str) -> tuple[str, str, str]:
    """A new key pair: (private key PEM, public key, fingerprint)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    if key_type == "x509":
        public = _self_signed(key, user_id)
        return private, public, x509_fingerprint(public)
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode() + " Generated-by-Nova"
    return private, public, ssh_fingerprint(public)


def _self_signed(key: object, user_id: str) -> str:
    """A WinRM-style certificate for ``user_id`` (Nova's generate_winrm_x509_cert)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, user_id)])
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())  # type: ignore[attr-defined]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.ExtendedKeyUsage([x509.ObjectIdentifier("1.3.6.1.5.5.7.3.2")]),
                       critical=False)
    )
    cert = builder.sign(key, hashes.SHA256())  # type: ignore[arg-type]
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def ssh_encrypt_text(public_key: str, text: str) -> bytes | None:
    """Nova's ``ssh_encrypt_text``: ``text`` encrypted with an SSH RSA public
    key (PKCS#1 v1.5), what ``os-server-password`` gives back; None when the key
    cannot encrypt."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    try:
        key = serialization.load_ssh_public_key(public_key.encode())
    except (ValueError, TypeError):
        return None
    if not isinstance(key, rsa.RSAPublicKey):
        return None
    return key.encrypt(text.encode(), padding.PKCS1v15())
