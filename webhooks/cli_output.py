"""Files the CLI writes (exports, PDFs): whole or not at all, and a one-line error when they cannot be."""

from __future__ import annotations

import os
from collections.abc import Iterable

import click


def write_atomically(path: str, chunks: Iterable[bytes | str]) -> None:
    """Write to a temporary file beside ``path`` and rename it: a failed run leaves no half a file, and a
    path that cannot be written is one line naming it (not the temporary file's name)."""
    tmp = f"{path}.part"
    try:
        with open(tmp, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk.encode("utf-8") if isinstance(chunk, str) else chunk)
        os.replace(tmp, path)
    except OSError as exc:
        _remove(tmp)
        raise click.ClickException(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        _remove(tmp)
        raise


def _remove(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except OSError:
        pass
