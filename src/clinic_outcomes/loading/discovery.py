"""Find the export files of every drop folder, and refuse at once anything that is not a regular file.

exports.md, "Layout": only regular files are read. A symbolic link is followed
only when its target is a regular file inside the exports folder; a link leading
outside or nowhere (dangling, looping), a pipe, a socket, a device or a folder
under an export file's name is rejected whole with a reason, without ever being
opened: a named pipe called `sessions.csv` would otherwise block the night (which
holds the run lock) until someone wrote to it. Entity and extension names match
case-insensitively (`Sessions.csv`, `PLANS.Csv.GZ`). Names beginning with `.`
(files and drop folders) are ignored and reported, like any other file that is
not an export; a dot-folder is reported once, not walked.

Choices where the spec is silent:
- A rejected non-regular file gets a ledger row (ops.loaded_files, status
  `rejected`, sha256 empty: it was never read) and a quality.rejected_rows row,
  every night it is still there: it is never "already loaded".
- A path (drop folder or file name) holding a control or bidirectional-formatting
  character is recorded with those characters written as `<U+XXXX>`; an export
  file under such a drop folder is rejected whole (its name cannot be shown as
  it is).
- A link to a folder is never followed: at the top it is ignored and reported;
  inside a drop, under an export file's name, it is rejected.
- Hashing opens the (resolved) file with O_NONBLOCK and O_NOFOLLOW and checks
  it is still a regular file, so a file swapped for a pipe after discovery is
  refused, not waited on.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from clinic_outcomes.loading.entities import ENTITIES, entity_of

# C0 and C1 controls (and DEL), and the Unicode bidirectional marks, embeddings, overrides and isolates.
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")

NOT_AN_EXPORT = "not an export file (sessions, needle_sites, plans, pain_checkins or patients as .csv, .csv.gz or .parquet)"


def escaped(text: str) -> str:
    """`text` with every control or bidirectional-formatting character written as <U+XXXX>."""
    return CONTROL_CHARACTERS.sub(lambda m: f"<U+{ord(m.group()):04X}>", text)


@dataclass(frozen=True)
class ExportFile:
    path: Path  # what is read: the file itself, or the regular file a link inside the exports folder leads to
    relpath: str  # relative to the exports folder, e.g. "2026-11-22/sessions.csv" (controls escaped)
    drop: str
    entity: str
    file_format: str  # csv, csv.gz or parquet
    problem: str | None = None  # set: rejected whole at discovery, never opened


@dataclass
class Discovery:
    files: list[ExportFile] = field(default_factory=list)
    ignored: list[tuple[str, str]] = field(default_factory=list)  # (relpath, reason)


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


def _problem(path: Path, root: Path) -> tuple[Path, str | None]:
    """(what to read, None) for a regular file or a link to one inside `root`; else (path, the reason)."""
    mode = path.lstat().st_mode
    if stat.S_ISREG(mode):
        return path, None
    if not stat.S_ISLNK(mode):
        return path, f"not a regular file: {_kind(mode)}; it is never read"
    try:
        target = Path(os.path.realpath(path, strict=True))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return path, "symbolic link that loops; it is never followed"
        return path, "symbolic link that leads nowhere (its target does not exist); it is never followed"
    if not target.is_relative_to(root):
        return path, "symbolic link that leads outside the exports folder; it is never followed"
    target_mode = target.stat().st_mode
    if not stat.S_ISREG(target_mode):
        return path, f"symbolic link to {_kind(target_mode)}, not a regular file; it is never followed"
    return target, None


def discover(exports_dir: Path) -> Discovery:
    """Every export file of every drop folder, in the order they are applied (drop folders by name, then the
    entities in load order); what is not an export file, ignored, with the reason."""
    exports_dir = Path(exports_dir)
    if not exports_dir.is_dir():
        raise FileNotFoundError(f"exports folder {exports_dir} does not exist")
    root = Path(os.path.realpath(exports_dir))
    found = Discovery()
    entity_order = {name: i for i, name in enumerate(ENTITIES)}
    drops: list[Path] = []
    for entry in sorted(exports_dir.iterdir()):
        name = escaped(entry.name)
        if entry.name.startswith("."):
            found.ignored.append((name, "hidden (name begins with '.')"))
        elif entry.is_dir() and not entry.is_symlink():
            drops.append(entry)
        elif entry.is_symlink():
            found.ignored.append((name, "symbolic link at the top of the exports folder; it is never followed"))
        else:
            found.ignored.append((name, "not inside a drop folder (exports/<drop>/<entity>.csv)"))
    for drop_dir in drops:
        in_drop: list[ExportFile] = []
        drop_problem = None
        if escaped(drop_dir.name) != drop_dir.name:
            drop_problem = "the drop folder's name holds a control or bidirectional-formatting character"
        for path in _walk(drop_dir, found, exports_dir):
            relpath = escaped(path.relative_to(exports_dir).as_posix())
            recognised = entity_of(path.name) if path.parent == drop_dir else None
            if recognised is None:
                found.ignored.append((relpath, NOT_AN_EXPORT))
                continue
            entity, file_format = recognised
            target, problem = _problem(path, root)
            in_drop.append(ExportFile(target, relpath, escaped(drop_dir.name), entity, file_format, problem or drop_problem))
        in_drop.sort(key=lambda f: (entity_order[f.entity], f.relpath))
        found.files.extend(in_drop)
    return found


def _walk(folder: Path, found: Discovery, exports_dir: Path, at_drop: bool = True):
    """Every entry below a drop folder that is not a folder (links, pipes and the like included; none is opened),
    and folders named like export files at the drop's level (rejected by the caller); hidden entries are
    reported, not walked."""
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            found.ignored.append((escaped(entry.relative_to(exports_dir).as_posix()), "hidden (name begins with '.')"))
        elif entry.is_dir() and not entry.is_symlink() and not (at_drop and entity_of(entry.name)):
            yield from _walk(entry, found, exports_dir, at_drop=False)
        else:
            yield entry


def _open_regular(path: Path) -> int:
    """A descriptor of `path` opened for reading only if it is a regular file right now (never blocks on a pipe)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, f"{path.name} is no longer a regular file")
    return fd


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with os.fdopen(_open_regular(path), "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def files_sha256(paths: list[Path]) -> list[str]:
    """file_sha256 of each path, in order, two files at a time: hashlib releases the GIL while it hashes, and an
    incremental night hashes every file of the exports folder again to check the ledger."""
    if len(paths) < 2:
        return [file_sha256(p) for p in paths]
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="sha256") as pool:
        return list(pool.map(file_sha256, paths))
