"""The data builds' caches: JSON lines, appended and synced as results come, so a killed build loses nothing; and the
whole-file writes of the builds, each made under a temporary name and renamed."""

import json
import os
from pathlib import Path


def read_rows(path: str) -> list[dict]:
    """Every row of a cache ([] when it does not exist yet)."""
    if not os.path.exists(path):
        return []
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


def append_rows(rows: list[dict], path: str):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "a") as handle:
        handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        handle.flush()
        os.fsync(handle.fileno())


def replace_rows(rows: list[dict], path: str):
    """A cache made whole again (written under a temporary name, then renamed)."""
    write_atomically(path, lambda temporary: Path(temporary).write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)))


def write_atomically(path: str, write) -> None:
    """Calls `write(temporary)` and then renames the temporary file to `path`, so a reader never sees half a file.
    The temporary name carries the process id: two builds of one output folder (one --from_the_end) may write the
    same file at the same moment, and a shared name let one rename away the other's file (FileNotFoundError).
    The temporary keeps `path`'s extension, for writers that choose the format by it (soundfile, numpy)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    stem, extension = os.path.splitext(path)
    temporary = f"{stem}.partial-{os.getpid()}{extension}"
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
