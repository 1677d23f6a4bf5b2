"""The static files as production and `make run` serve them (docs/deploy.md, "Static files").

`collectstatic` writes each file under a name with its content's hash
(`vendor/plotly.min.<hash>.js`) plus a brotli and a gzip copy; WhiteNoise answers a hashed
name with the copy the browser accepts and `Cache-Control: max-age=315360000, public,
immutable`, so a browser fetches plotly.js (4.8 MB, 1.1 MB as brotli) once per release.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any

from whitenoise.compress import Compressor, brotli_installed
from whitenoise.storage import CompressedManifestStaticFilesStorage


class AtomicCompressor(Compressor):
    """WhiteNoise's compressor, writing each copy whole or not at all: `HashedStaticStorage`
    takes an existing copy as done, so a run stopped mid-write must not leave half a file."""

    def write_data(self, path: str, data: bytes, suffix: str, stat_result: os.stat_result) -> str:
        filename = path + suffix
        partial = f"{filename}.partial"
        with open(partial, "wb") as f:
            f.write(data)
        os.utime(partial, (stat_result.st_atime, stat_result.st_mtime))
        os.replace(partial, filename)
        return filename


class HashedStaticStorage(CompressedManifestStaticFilesStorage):
    """Hashed names with brotli and gzip copies, also with DEBUG on.

    - Django's manifest storage gives the plain name while DEBUG is on, which WhiteNoise then
      serves with a short max-age: `make run` (DEBUG by default) would revalidate plotly.js
      on every page. Here `{% static %}` always names the hashed file; a name missing from
      the manifest is an error (run collectstatic), as in production.
    - Only hashed names are compressed, each once: a hashed name's content never changes, so
      a copy from an earlier run is kept. WhiteNoise compresses every file on every run,
      plain names too (which only hand-written URLs such as the 500 page's use); brotli at
      its best quality takes ~9 s for plotly.js alone, which each `make run` paid twice.
    """

    def url(self, name: str | None, force: bool = False) -> str:
        return super().url(name, force=True)

    def create_compressor(self, **kwargs: Any) -> Compressor:
        return AtomicCompressor(**kwargs)

    def compress_files(self, paths: Iterable[str]) -> Iterator[tuple[str, str]]:
        hashed = set(self.hashed_files.values())
        suffix = ".br" if brotli_installed else ".gz"
        fresh = [path for path in paths if path in hashed and not self.exists(path + suffix)]
        compressed: Iterator[tuple[str, str]] = super().compress_files(fresh)
        return compressed
