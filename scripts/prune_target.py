"""Removes test and example executables of a cargo target folder that a newer build replaced.

Cargo never deletes an executable it no longer uses: every change of a test's dependencies (or
of the features they are built with) links a new `deps/{name}-{hash}` beside the old one. In
CI's cache, shared by every run on the machine, they pile up (32 GB of 4,000 files in
`debug/deps` after a few days here, until the disk was full). Each executable's `.d` file names
its sources; of the executables built from the same sources (whatever clone they were built
in), only the newest is kept.

    python3 scripts/prune_target.py TARGET_DIR    prints what it freed
"""

import os
import sys
from pathlib import Path


def sources_of(dep_file: Path) -> str | None:
    """The first source an executable was built from, relative to its workspace."""
    try:
        first = dep_file.read_text(errors="replace").split("\n", 1)[0]
    except OSError:
        return None
    _, _, deps = first.partition(": ")
    source = deps.split(" ", 1)[0]
    # Clones in other folders build the same target: `/tmp/ci/main/crates/x/...` is
    # `/work/main/crates/x/...`.
    marker = source.find("/crates/")
    return source[marker:] if marker >= 0 else source or None


def prune(folder: Path) -> tuple[int, int]:
    newest: dict[tuple[str, str], tuple[float, Path]] = {}
    stale: list[Path] = []
    for exe in folder.iterdir():
        if exe.suffix or not exe.is_file() or not os.access(exe, os.X_OK) or "-" not in exe.name:
            continue
        name = exe.name.rsplit("-", 1)[0]
        source = sources_of(exe.with_name(exe.name + ".d"))
        if source is None:
            continue
        key, mtime = (name, source), exe.stat().st_mtime
        kept = newest.get(key)
        if kept is None:
            newest[key] = (mtime, exe)
        elif kept[0] < mtime:
            stale.append(kept[1])
            newest[key] = (mtime, exe)
        else:
            stale.append(exe)
    freed = 0
    for exe in stale:
        freed += exe.stat().st_size
        exe.unlink()
        exe.with_name(exe.name + ".d").unlink(missing_ok=True)
    return len(stale), freed


def main() -> None:
    target = Path(sys.argv[1])
    count = freed = 0
    for profile in ("debug", "release"):
        for sub in ("deps", "examples"):
            folder = target / profile / sub
            if folder.is_dir():
                n, b = prune(folder)
                count, freed = count + n, freed + b
    print(f"pruned {count} superseded executables ({freed / 1e9:.1f} GB) from {target}")


if __name__ == "__main__":
    main()
