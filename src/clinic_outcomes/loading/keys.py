"""Pseudonymous patient keys: HMAC-SHA256 of the EMR patient number.

The secret comes from CLINIC_OUTCOMES_KEY, or from a key file created with
owner-only permissions beside the warehouse on first run. Without the secret
the keys cannot be linked back to patient numbers.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path


KEY_ENV = "CLINIC_OUTCOMES_KEY"
MIN_KEY_CHARS = 16


class PatientKeyError(RuntimeError):
    """The patient-key secret is unusable."""


def key_file_for(warehouse: Path) -> Path:
    return warehouse.with_name(warehouse.name + ".key")


def load_key(warehouse: Path) -> bytes:
    """The secret: from the environment, else the key file beside the warehouse (created once)."""
    from_env = os.environ.get(KEY_ENV)
    if from_env is not None:
        if len(from_env) < MIN_KEY_CHARS:
            raise PatientKeyError(f"{KEY_ENV} is set but shorter than {MIN_KEY_CHARS} characters")
        return from_env.encode("utf-8")
    path = key_file_for(warehouse)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL: two first runs cannot both create a key; 0o600: owner-only from the start.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32) + "\n")
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise PatientKeyError(f"key file {path} is readable by others (mode {mode:o}); chmod 600 it")
    text = path.read_text().strip()
    if len(text) < MIN_KEY_CHARS:
        raise PatientKeyError(f"key file {path} is shorter than {MIN_KEY_CHARS} characters")
    return text.encode("utf-8")


def patient_key(secret: bytes, patient_id: str) -> str:
    return hmac.new(secret, patient_id.encode("utf-8"), hashlib.sha256).hexdigest()


# HMAC-SHA256 (RFC 2104) as a DuckDB expression over a VARCHAR, for keying a night's patient numbers inside the
# database (in parallel, without a round trip through Python): sha256(outer pad || sha256(inner pad || value)).
# The pads are bound as the statement parameters `hmac_inner` and `hmac_outer` (hmac_params); the statement text
# never holds the secret. patient_key above is the reference; tests check the two agree.
_BLOCK = 64  # SHA-256 block size in bytes


def hmac_params(secret: bytes) -> dict[str, bytes]:
    """The statement parameters patient_key_sql needs: the secret's inner and outer HMAC pads."""
    key = hashlib.sha256(secret).digest() if len(secret) > _BLOCK else secret
    key = key.ljust(_BLOCK, b"\0")
    return {"hmac_inner": bytes(b ^ 0x36 for b in key), "hmac_outer": bytes(b ^ 0x5C for b in key)}


def patient_key_sql(value: str) -> str:
    """SQL for patient_key(secret, <value>) (lower-case hex), given the parameters of hmac_params(secret)."""
    return f"sha256($hmac_outer || unhex(sha256($hmac_inner || encode({value}))))"
