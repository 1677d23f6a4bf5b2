"""The simulator's own device tokens, kept between runs in a file only its owner can read.

The portal stores a token only as its hash, so a simulator that forgot its tokens would have
to issue a new one per device on every start (an audit entry each, and the previous token cut
off). `TokenStore` keeps the plaintext tokens the simulator issued in a JSON file under var/
(mode 0600, written atomically, never printed) and `fleet_load` reuses each one the server
still accepts; only a missing, revoked, expired or foreign one is issued again.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


class TokenStore:
    """`{device id: token}` in `path`; an unreadable or malformed file is an empty store."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {str(k): v for k, v in data.items() if isinstance(v, str) and v}

    def save(self, tokens: dict[str, str]) -> None:
        """Replace the file with `tokens`, readable and writable by this user alone.

        Written to a temporary file created 0600 in the same folder, then renamed over the old
        one: a crash leaves the old file or the new one, never half of either, and the secret
        is never in a file anyone else may read, not even for a moment.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".tokens-", suffix=".tmp")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(tokens, handle, indent=1, sort_keys=True)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def __repr__(self) -> str:  # the path only: never the tokens
        return f"TokenStore({str(self.path)!r})"
