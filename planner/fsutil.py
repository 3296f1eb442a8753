"""The one way optiplan writes what a user keeps: to a temporary sibling, then renamed into place, so an
interrupted or failed run leaves the previous file or folder as it was and nothing half-written."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TAG_ENV = "OPTIPLAN_TMP_TAG"  # a process-wide tag (the service sets it per job attempt) when no `tag` is passed


def _tag(tag: str | None) -> str | None:
    tag = tag if tag is not None else os.environ.get(TAG_ENV) or None
    return re.sub(r"[^A-Za-z0-9_-]", "_", tag)[:64] if tag is not None else None


def temporary_prefix(name: str, tag: str | None = None, folder: bool = True) -> str:
    """The prefix of the temporary sibling for `name`. With a tag (e.g. a job id and attempt), the name carries it,
    so whoever tagged a write can find and remove exactly its own leftovers and nobody else's."""
    if (tag := _tag(tag)) is not None:
        return f".{name}.optiplan-tmp-{tag}-"
    return f".{name}.optiplan-tmp-" if folder else f".{name}-"


def previous_prefix(name: str, tag: str | None = None) -> str:
    """The prefix of the copy of `name` moved aside while its replacement is renamed in (`previous_kept`), tagged as
    temporary siblings are: whoever tagged the write puts it back, or removes it, after a kill."""
    tag = _tag(tag)
    return f".{name}.optiplan-previous-{tag}-" if tag is not None else f".{name}.optiplan-previous-"


def remove_path(path: Path) -> None:
    """Remove a file, a link or a folder."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def previous_kept(out: Path, tag: str | None = None) -> Iterator[None]:
    """Move whatever is at `out` aside while the block puts its replacement in place; put it back where the block
    fails (an interrupt), delete it where it does not. Never a moment where `out` is half deleted: a kill leaves the
    old copy whole, under `previous_prefix`, for the tag's cleanup to put back."""
    out = Path(out)
    if not out.exists() and not out.is_symlink():
        yield
        return
    backup = Path(tempfile.mkdtemp(prefix=previous_prefix(out.name, tag), dir=str(out.parent)))
    backup.rmdir()
    out.rename(backup)
    try:
        yield
    except BaseException:
        remove_path(out)
        backup.rename(out)
        raise
    remove_path(backup)


def write_text_atomic(path: Path, text: str, tag: str | None = None) -> Path:
    """Write `text` to `path` through a temporary file in the same folder (a rename is atomic there)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temporary_prefix(path.name, tag, folder=False), dir=str(path.parent))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@contextmanager
def atomic_folder(out: Path, tag: str | None = None) -> Iterator[Path]:
    """Yield an empty temporary folder beside `out`; when the block ends without error it replaces `out` (which
    the caller has checked may be replaced), otherwise it is removed."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=temporary_prefix(out.name, tag), dir=str(out.parent)))
    try:
        yield tmp
        with previous_kept(out, tag):
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
