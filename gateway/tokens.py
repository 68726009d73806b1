"""Development signing key, its JWKS, and token issuing.

The dev key is generated on first use under ``settings.gateway.dev_key_dir`` (mode 0600):
``jwt-rs256.pem`` (RSA 2048), ``jwt-es256.pem`` (P-256) or ``jwt-hs256.key`` (32 random bytes,
dev profile only). ``jwks.json`` beside it holds the public key (for HS256 the shared secret,
which is why HS256 is refused outside the dev profile). In production set
``gateway.jwks_file`` to the identity provider's JWKS; tokens then come from that provider.

Claims: ``iss``, ``aud``, ``sub``, ``iat``, ``exp`` (seconds since the epoch) and the role claim
(``gateway.jwt_role_claim``, default ``role``). The gateway requires ``exp`` no further ahead than
``gateway.jwt_max_lifetime_s`` (24 h) and allows ``gateway.jwt_clock_skew_s`` (5 s) of skew, so
tokens are issued for at most that lifetime.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from aiots.services.common.settings import GatewaySettings

RSA_BITS = 2048
HS256_SECRET_BYTES = 32
_KEY_FILES = {"RS256": "jwt-rs256.pem", "ES256": "jwt-es256.pem", "HS256": "jwt-hs256.key"}
_TTL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class SigningKey:
    """A private key (or HS256 secret) with its key id and algorithm."""

    algorithm: str
    kid: str
    key: Any  # RSAPrivateKey | EllipticCurvePrivateKey | bytes


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _kid(public_material: bytes) -> str:
    return hashlib.sha256(public_material).hexdigest()[:16]


def load_or_create_key(key_dir: Path, algorithm: str) -> SigningKey:
    """The dev signing key for ``algorithm``, generated on first use."""
    path = key_dir / _KEY_FILES[algorithm]
    if algorithm == "HS256":
        if not path.exists():
            _write_private(path, secrets.token_bytes(HS256_SECRET_BYTES))
        secret = path.read_bytes()
        return SigningKey(algorithm, _kid(secret), secret)
    if not path.exists():
        priv: Any = (
            rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
            if algorithm == "RS256"
            else ec.generate_private_key(ec.SECP256R1())
        )
        pem = priv.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        _write_private(path, pem)
    key: Any = serialization.load_pem_private_key(path.read_bytes(), password=None)
    pub = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return SigningKey(algorithm, _kid(pub), key)


def jwks_of(sk: SigningKey) -> dict[str, Any]:
    """JWKS (RFC 7517) holding the verification key of ``sk``."""
    if sk.algorithm == "HS256":
        jwk: dict[str, Any] = {"kty": "oct", "k": _b64(sk.key)}
    elif sk.algorithm == "RS256":
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(sk.key.public_key()))
    else:
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(sk.key.public_key()))
    jwk.update({"kid": sk.kid, "alg": sk.algorithm, "use": "sig"})
    return {"keys": [jwk]}


def ensure_jwks(gw: GatewaySettings) -> Path:
    """Path of the JWKS Envoy should use: ``gw.jwks_file`` when set, else the dev key's JWKS."""
    if gw.jwks_file is not None:
        if not gw.jwks_file.is_file():
            raise FileNotFoundError(f"gateway.jwks_file {gw.jwks_file} does not exist")
        return Path(gw.jwks_file)
    sk = load_or_create_key(gw.dev_key_dir, gw.jwt_algorithm)
    path = Path(gw.dev_key_dir) / "jwks.json"
    text = json.dumps(jwks_of(sk), indent=2)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return Path(path)


def parse_ttl(text: str) -> float:
    """'90', '90s', '15m', '1h', '7d' -> seconds (> 0)."""
    m = _TTL.match(text)
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"ttl {text!r}: expected a positive number with optional unit s, m, h or d")
    return float(m.group(1)) * _UNIT_S[m.group(2)]


def issue_token(
    gw: GatewaySettings,
    *,
    role: str,
    subject: str,
    ttl_s: float,
    now: float | None = None,
    extra_claims: dict[str, Any] | None = None,
) -> str:
    """A signed JWT for ``subject`` with ``role``, valid ``ttl_s`` seconds from ``now``.

    Raises ValueError when ``ttl_s`` exceeds ``gw.jwt_max_lifetime_s``: the gateway would refuse
    such a token (it requires ``exp`` and caps the lifetime)."""
    if math.ceil(ttl_s) > gw.jwt_max_lifetime_s:
        raise ValueError(
            f"ttl {ttl_s:g} s exceeds gateway.jwt_max_lifetime_s ({gw.jwt_max_lifetime_s} s), the longest "
            "lifetime the gateway accepts (AIOTS_GATEWAY__JWT_MAX_LIFETIME_S raises it)"
        )
    sk = load_or_create_key(gw.dev_key_dir, gw.jwt_algorithm)
    iat = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "iss": gw.jwt_issuer,
        "aud": gw.jwt_audience,
        "sub": subject,
        "iat": iat,
        "exp": iat + math.ceil(ttl_s),  # never shorter than asked (0.5 s must not be already expired)
        gw.jwt_role_claim: role,
    }
    claims.update(extra_claims or {})
    return jwt.encode(claims, sk.key, algorithm=sk.algorithm, headers={"kid": sk.kid})
