"""Checksum manifests of checkpoint folders: a record of what a save wrote, so a restore can tell damaged files.

``write(folder)`` records the size and sha256 of every file under ``folder`` in
``folder/modzoo_manifest.json``, atomically and after everything else, so a
manifest's presence means the files it lists were complete when it was written.
``check(folder, items)`` compares the files of the named sub-folders (and the
folder's own files) with that record and names the first one that differs.
"""

from __future__ import annotations

import json
import pathlib

from data.atomic import write_bytes
from data.checksum import file_digest

NAME = "modzoo_manifest.json"


def exists(folder: pathlib.Path) -> bool:
    """Whether ``folder`` has a manifest (its checkpoint was sealed after Orbax committed it)."""
    return (folder / NAME).is_file()


def write(folder: pathlib.Path) -> None:
    """Record the size and sha256 of every file under ``folder`` (except the manifest) in its manifest."""
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != NAME):
        files[path.relative_to(folder).as_posix()] = {"bytes": path.stat().st_size, "sha256": file_digest(path)}
    write_bytes(folder / NAME, json.dumps({"files": files}, indent=1).encode())


def check(folder: pathlib.Path, items: tuple[str, ...]) -> str | None:
    """The first difference between ``folder``'s files and its manifest, as a phrase naming the file.

    Only the folder's own files and those under the sub-folders ``items`` are
    compared. None when they all match, or when there is no manifest to compare with.
    """
    try:
        recorded = json.loads((folder / NAME).read_text())["files"]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        return f"{NAME} is unreadable"
    wanted = {rel: entry for rel, entry in recorded.items() if "/" not in rel or rel.split("/", 1)[0] in items}
    for item in items:
        if any(rel.startswith(item + "/") for rel in wanted) and not (folder / item).is_dir():
            return f"{item}/ is missing"
    for rel, entry in sorted(wanted.items()):
        path = folder / rel
        if not path.is_file():
            return f"{rel} is missing"
        size = path.stat().st_size
        if size != entry["bytes"]:
            return f"{rel} has {size} bytes, {entry['bytes']} were written"
        if file_digest(path) != entry["sha256"]:
            return f"{rel} sha256 mismatch"
    return None
