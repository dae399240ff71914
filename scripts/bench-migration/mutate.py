#!/usr/bin/env python3
"""What the legacy system changes between a migration and the cutover's last sync, for the
delta benchmark (issue 19, part 5), the same for a given seed:

    mutate.py prepare TREE --seed 1 --choice FILE [--percent 1]
    mutate.py apply TREE --choice FILE --changed FILE

`prepare` picks PERCENT % of the tree's files (at least 3): 40% to be rewritten in place with
the same size and modification time, 30% to be appended to, and as many new files as the
remaining 30%. TREE is a hard-linked copy of the cached tree (`cp -al`), so it also gives
each picked file an inode of its own first (a copy), leaving the cache untouched; run it
before the first migration of TREE. `apply` makes the changes and writes every changed or new
path (relative to TREE), one a line, to --changed.
"""

import argparse
import json
import os
import random

KIB = 1024


def files_of(tree):
    out = []
    for root, _, names in os.walk(tree):
        for name in names:
            out.append(os.path.relpath(os.path.join(root, name), tree))
    return sorted(out)


def own_inode(path):
    """Replaces a hard link with a copy of the bytes (same times)."""
    st = os.stat(path)
    with open(path, "rb") as f:
        data = f.read()
    tmp = path + ".own"
    with open(tmp, "wb") as f:
        f.write(data)
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(tmp, path)


def prepare(args):
    rng = random.Random(args.seed)
    files = files_of(args.tree)
    n = max(3, round(len(files) * args.percent / 100))
    rewrite, append = round(n * 0.4), round(n * 0.3)
    new = n - rewrite - append
    picked = rng.sample(files, rewrite + append)
    for rel in picked:
        own_inode(os.path.join(args.tree, rel))
    choice = {
        "seed": args.seed,
        "rewrite": picked[:rewrite],
        "append": picked[rewrite:],
        "new": [f"users/u001/2026/12/new-{args.seed}-{i:03d}.bin" for i in range(new)],
    }
    with open(args.choice, "w") as f:
        json.dump(choice, f)
    print(f"picked {n} of {len(files)} files: {rewrite} to rewrite, {len(picked) - rewrite} to append to, {new} new")


def apply(args):
    with open(args.choice) as f:
        choice = json.load(f)
    rng = random.Random(choice["seed"] * 7919)
    for rel in choice["rewrite"]:
        path = os.path.join(args.tree, rel)
        st = os.stat(path)
        with open(path, "r+b") as f:  # the same inode: only the change time tells
            at = min(1000, st.st_size - 1)
            f.seek(at)
            b = f.read(1)
            f.seek(at)
            f.write(bytes([b[0] ^ 0xFF]))
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        after = os.stat(path)
        assert (after.st_size, after.st_mtime_ns, after.st_ino) == (st.st_size, st.st_mtime_ns, st.st_ino)
    for rel in choice["append"]:
        with open(os.path.join(args.tree, rel), "ab") as f:
            f.write(rng.randbytes(4 * KIB))
    for rel in choice["new"]:
        path = os.path.join(args.tree, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(rng.randbytes(rng.randint(20 * KIB, 200 * KIB)))
    changed = sorted(choice["rewrite"] + choice["append"] + choice["new"])
    with open(args.changed, "w") as f:
        f.write("".join(p + "\n" for p in changed))
    print(f"changed {len(changed)} files in {args.tree}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("tree")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--percent", type=float, default=1.0)
    p.add_argument("--choice", required=True)
    a = sub.add_parser("apply")
    a.add_argument("tree")
    a.add_argument("--choice", required=True)
    a.add_argument("--changed", required=True)
    args = ap.parse_args()
    prepare(args) if args.command == "prepare" else apply(args)


if __name__ == "__main__":
    main()
