"""Authentication of OTLP and query clients: bearer tokens and HTTP basic auth.

Every configured credential is compared in constant time (``hmac.compare_digest``), and all of
them are compared on every request, so response timing says nothing about how close a guess was.
Secrets are never logged; a refusal names only the scheme.
"""

from __future__ import annotations

import base64
import hmac
from pathlib import Path

from .config import AuthConfig
from .errors import ConfigError


def _read_lines(path: str | None, key: str) -> list[str]:
    if not path:
        return []
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ConfigError(f"{key} = {path!r}: cannot read the file ({e.strerror})") from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


class Authenticator:
    """Checks ``Authorization`` header values for one side (``receiver`` or ``query``)."""

    def __init__(self, cfg: AuthConfig, side: str) -> None:
        tokens = list(getattr(cfg, f"{side}_bearer_tokens"))
        tokens += _read_lines(getattr(cfg, f"{side}_bearer_tokens_file"), f"auth.{side}_bearer_tokens_file")
        users = list(getattr(cfg, f"{side}_basic_users"))
        users += _read_lines(getattr(cfg, f"{side}_basic_users_file"), f"auth.{side}_basic_users_file")
        for u in users:
            if ":" not in u:
                raise ConfigError(f"auth.{side}_basic_users_file: each line must be user:password")
        self._accepted = [f"Bearer {t}".encode() for t in tokens]
        self._accepted += [b"Basic " + base64.b64encode(u.encode()) for u in users]
        # Each credential's name ([tenancy.credentials] maps names to tenants): a basic-auth user's
        # name; bearer tokens have none.
        self._names: list[str | None] = [None] * len(tokens) + [u.split(":", 1)[0] for u in users]
        self.schemes = (["Bearer"] if tokens else []) + (["Basic"] if users else [])

    @property
    def enabled(self) -> bool:
        return bool(self._accepted)

    def check(self, authorization: str | bytes | None) -> bool:
        """True when authentication is off or the header carries an accepted credential."""
        if not self._accepted:
            return True
        return self._match(authorization) >= 0

    def identify(self, authorization: str | bytes | None) -> str | None:
        """The name of the accepted credential the header carries (a basic-auth user), else None."""
        i = self._match(authorization)
        return self._names[i] if i >= 0 else None

    def names(self) -> list[str]:
        return [n for n in self._names if n is not None]

    def _match(self, authorization: str | bytes | None) -> int:
        if authorization is None:
            return -1
        given = authorization.encode() if isinstance(authorization, str) else bytes(authorization)
        found = -1
        for i, accepted in enumerate(self._accepted):  # every one compared: timing says nothing
            if hmac.compare_digest(given, accepted) and found < 0:
                found = i
        return found

    def challenge(self) -> str:
        """The ``WWW-Authenticate`` value for a 401."""
        return ", ".join(f'{s} realm="otelingest"' for s in self.schemes)
