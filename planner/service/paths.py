"""Where the service may read and write: inputs only inside the `--models-dir` roots (and the workdir, where jobs
put their outputs), outputs only inside `--workdir`. A name is a relative path; an absolute path, `..` or a symlink
that leads out of its root is refused, and so is anything the catalog does not know that is not under a root
(no hub downloads, no arbitrary files)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import ServiceRefused

# plain names: letters, digits and . _ - in each part; no part may be '.' or '..' (checked below)
_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
RESERVED = ("jobs.sqlite", ".jobs.lock")  # the embedded queue's files in the workdir: never an input or an output


# The name a calibrate job holds as its output: it rewrites the calibration file of the machine that runs it (loaded,
# measured for minutes, written back), so two at once would each keep the other's earlier fit. Not a workdir name:
# no request name starts with '@'.
CALIBRATION_WRITER = "@calibration"


def check_name(name: str, what: str) -> PurePosixPath:
    """A relative, normalised name of at most 8 parts; refuses absolute paths, `..`, backslashes and odd
    characters with a sentence saying why."""
    if not isinstance(name, str) or not name.strip():
        raise ServiceRefused(f"{what}: give a name relative to the server's folders", 400)
    if name.startswith(("/", "~")) or re.match(r"^[A-Za-z]:", name) or "\\" in name:
        raise ServiceRefused(f"{what} '{name}': absolute paths are refused; give a name inside the server's folders")
    parts = PurePosixPath(name).parts
    if not parts:  # '.', './.': the folder itself, not a name in it
        raise ServiceRefused(f"{what} '{name}': names the server's folder itself; give a name inside it", 400)
    if ".." in parts:
        raise ServiceRefused(f"{what} '{name}': '..' is refused; give a name inside the server's folders")
    if len(parts) > 8 or not all(_PART.match(p) for p in parts):
        raise ServiceRefused(f"{what} '{name}': names are letters, digits, '.', '_' and '-' separated by '/'", 400)
    return PurePosixPath(*parts)


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


@dataclass(frozen=True)
class Roots:
    """The server's folders: `models` (read-only inputs) and `workdir` (job outputs, the job database)."""

    workdir: Path
    models: tuple[Path, ...] = field(default_factory=tuple)

    @classmethod
    def create(cls, workdir: str | Path, models: list[str | Path] | tuple[str | Path, ...] = ()) -> Roots:
        work = Path(workdir).expanduser().resolve()
        work.mkdir(parents=True, exist_ok=True)
        return cls(work, tuple(Path(m).expanduser().resolve() for m in models))

    def _under(self, root: Path, rel: PurePosixPath, what: str, name: str) -> Path:
        resolved = (root / rel).resolve()  # follows every symlink
        if not _inside(resolved, root):
            raise ServiceRefused(f"{what} '{name}' leads outside the server's folders (a symlink?); refused")
        return resolved

    def input_path(self, name: str, what: str = "model") -> Path:
        """An existing file or folder under a models dir, else under the workdir (where apply's outputs are)."""
        rel = check_name(name, what)
        for root in (*self.models, self.workdir):
            candidate = root / rel
            if candidate.exists() or candidate.is_symlink():
                found = self._under(root, rel, what, name)
                if found.parent == self.workdir and found.name.startswith(RESERVED):
                    raise ServiceRefused(f"{what} '{name}': the job database is the server's own, not an input", 403)
                return found
        where = ", ".join(str(r.name) for r in (*self.models, self.workdir))
        raise ServiceRefused(f"{what} '{name}': no such file or folder in the server's folders ({where})", 404)

    def output_path(self, name: str, what: str = "output") -> Path:
        """A new (or replaceable) file or folder under the workdir; its parent must resolve inside it too."""
        rel = check_name(name, what)
        path = self._under(self.workdir, rel, what, name)
        if path == self.workdir:
            raise ServiceRefused(f"{what} '{name}': name a folder inside the workdir, not the workdir itself", 400)
        if path.name.startswith((".", *RESERVED)) or path.name.endswith((".sqlite", ".sqlite-wal", ".sqlite-shm")):
            raise ServiceRefused(f"{what} '{name}': hidden names and the job database are reserved", 400)
        if inside := next((root for root in self.models if _inside(path, root) and root != self.workdir
                           and _inside(root, self.workdir)), None):
            # a models dir inside the workdir (--workdir /data --models-dir /data/models): its models are inputs only
            raise ServiceRefused(f"{what} '{name}': it lies in the models dir {inside.name}, whose models are "
                                 "read-only inputs; choose another name", 403)
        if shadow := next((root for root in self.models if ((root / rel).exists() or (root / rel).is_symlink())
                           and (root / rel).resolve() != path.resolve()), None):
            # inputs are looked up in the models dirs first: this output could never be named by a later job
            raise ServiceRefused(f"{what} '{name}': the models dir {shadow.name} has a '{rel}' too, which a later job "
                                 "naming it would read instead; choose another name", 409)
        return path

    def labels(self) -> list[tuple[re.Pattern, str]]:
        """Each folder the server knows, longest first, with the label it is shown as: `models:`, `workdir:` and the
        user's cache folder (calibration files) as `cache:`."""
        from ..machine.calibration import cache_dir

        cache = cache_dir().parent
        home = Path.home()
        pairs = [(str(root), "models:") for root in self.models] + [(str(self.workdir), "workdir:"),
                                                                      (str(cache), "cache:")]
        if cache.is_relative_to(home):
            pairs.append(("~/" + str(cache.relative_to(home)), "cache:"))
        pairs.sort(key=lambda pair: -len(pair[0]))
        # the folder itself or anything under it; not a sibling that merely starts the same (/models2)
        return [(re.compile(re.escape(text) + r"(/|(?![A-Za-z0-9._-]))"), label) for text, label in pairs]

    def redact(self, value: Any) -> Any:
        """`value` (text, or JSON-ready data) with every server folder rewritten to its label: what clients see
        names files the way requests do (`models:tiny`, `workdir:out`), never the server's absolute paths."""
        return _rewrite(value, self.labels())

    def model_ref(self, name: str) -> str:
        """What a profile/advise request may name: a catalog model (name, alias or its hub id, answered offline)
        or a model folder / config.json under a models dir. Anything else is refused: no hub fetch, no paths."""
        from ... import profiles
        from ..errors import suggest

        if profiles.resolve_model_name(name) is not None:
            return name
        close = suggest(name, [*profiles.model_names(), *(self.model_folders() if self.models else [])])
        hint = f"; did you mean: {', '.join(close)}?" if close else ""  # as the CLI's unknown-name message
        if not self.models:
            raise ServiceRefused(f"model '{name}' is not in the catalog and this server has no --models-dir{hint} "
                                 "(GET /v1/catalog/models lists the catalog)", 404)
        rel = check_name(name, "model")
        for root in self.models:
            if (root / rel).exists() or (root / rel).is_symlink():
                return str(self._under(root, rel, "model", name))
        raise ServiceRefused(f"model '{name}' is neither a catalog model nor a folder in the models dirs{hint} "
                             "(GET /v1/catalog/models and GET /v1/models list both)", 404)

    def model_folders(self) -> list[str]:
        """The model folders (with a config.json) directly inside each models dir, by name."""
        found = []
        for root in self.models:
            if root.is_dir():
                found += sorted(p.name for p in root.iterdir() if (p / "config.json").is_file()
                                and _inside(p.resolve(), root) and _PART.match(p.name))
        return found


def _rewrite(value: Any, labels: list[tuple[re.Pattern, str]]) -> Any:
    if isinstance(value, str):
        for pattern, label in labels:
            value = pattern.sub(label, value)
        return value
    if isinstance(value, dict):
        return {_rewrite(k, labels): _rewrite(v, labels) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rewrite(v, labels) for v in value]
    return value


def partial_folders(out: Path, tag: str, prefix=None) -> list[Path]:
    """The temporary siblings that the attempt tagged `tag` left for `out` (fsutil.atomic_folder and
    write_text_atomic with that tag; with `prefix` fsutil.previous_prefix, the copy a replacement moved aside):
    exactly those names, never another output's or another attempt's."""
    from ..fsutil import temporary_prefix

    if not out.parent.is_dir():
        return []
    start = (prefix or temporary_prefix)(out.name, tag)
    pattern = re.compile(re.escape(start) + r"[a-z0-9_]{8}")  # tempfile's 8 characters
    return sorted(p for p in out.parent.iterdir() if pattern.fullmatch(p.name))


def remove_partial(out: Path, tag: str) -> list[str]:
    """Remove what the attempt tagged `tag` left half-written for `out`, and put back what it was replacing where a
    kill came between moving that aside and renaming its own in; returns what it did, a line each (for the log)."""
    from ..fsutil import previous_prefix, remove_path

    done = []
    for p in partial_folders(out, tag):
        remove_path(p)
        done.append(f"removed the partial output {p.name}")
    for p in partial_folders(out, tag, previous_prefix):
        if out.exists() or out.is_symlink():  # the replacement is in place: the old copy was to be deleted
            remove_path(p)
        else:
            p.rename(out)
            done.append(f"put back {out.name}, which the job was replacing")
    return done
