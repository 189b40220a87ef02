"""Signing secrets of API keys: HMAC-SHA256 secrets for the Binance-compatible API, encrypted at rest.

Binance-style authentication signs every request with a secret the server must hold in the clear to check the
HMAC, so it cannot be hashed like the API key itself. It is encrypted with Fernet (AES-128-CBC + HMAC-SHA256, from
``cryptography``) under a key derived from the ``SIGNING_SECRET_KEY`` setting (SHA-256 of its value; unset, from
``SECRET_KEY``, which suits development only). The plain secret is shown once, when the key is made, is decrypted
only in memory to check a signature, and never reaches a log line.

Rotating ``SIGNING_SECRET_KEY`` makes every stored secret undecryptable: keys must then be issued again.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import string

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings

SECRET_ALPHABET = string.ascii_letters + string.digits
SECRET_LENGTH = 64  # like Binance's: 64 letters and digits


def _fernet() -> Fernet:
    material = settings.SIGNING_SECRET_KEY or f"signing-secret:{settings.SECRET_KEY}"
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(material.encode()).digest()))


def signing_secret_new() -> tuple[str, str]:
    """A fresh secret: (plain, encrypted)."""
    plain = "".join(secrets.choice(SECRET_ALPHABET) for _ in range(SECRET_LENGTH))
    return plain, signing_secret_encrypt(plain)


def signing_secret_encrypt(plain: str) -> str:
    return _fernet().encrypt(plain.encode()).decode()


def signing_secret_decrypt(encrypted: str) -> str | None:
    """The plain secret, or None when there is none or it was encrypted under another key."""
    if not encrypted:
        return None
    try:
        return _fernet().decrypt(encrypted.encode()).decode()
    except InvalidToken:
        return None
