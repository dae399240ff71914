#!/usr/bin/env python3
"""A legacy tree for the migration benchmark, the same for a given seed:

    generate.py OUT [--seed 1] [--files 5000] [--tiny]

5,000 files, about 2.7 GiB: 4,200 of 20-200 KiB, 775 of 0.5-5 MiB, 25 of 20-60 MiB (sizes
log-uniform within each band), owned by 250 users with a Zipf-like spread (user k owns a share
proportional to 1/k), in users/<id>/<yyyy>/<mm>/ folders whose dates are the files' mtimes.
Contents are pseudo-random bytes from the seed (incompressible, no two files alike).
--tiny makes every file 1-8 KiB instead (the scale benchmark: many files, few bytes).
"""

import argparse
import math
import os
import random

KIB, MIB = 1024, 1024 * 1024
BANDS = [(4200, 20 * KIB, 200 * KIB), (775, 512 * KIB, 5 * MIB), (25, 20 * MIB, 60 * MIB)]
USERS = 250


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--files", type=int, default=5000, help="scales the bands' counts")
    ap.add_argument("--tiny", action="store_true", help="files of 1-8 KiB")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    bands = [(args.files, KIB, 8 * KIB)] if args.tiny else BANDS
    scale = args.files / sum(n for n, _, _ in bands)
    sizes = []
    for n, lo, hi in bands:
        for _ in range(max(1, round(n * scale))):
            sizes.append(int(math.exp(rng.uniform(math.log(lo), math.log(hi)))))
    rng.shuffle(sizes)
    weights = [1 / k for k in range(1, USERS + 1)]
    users = rng.choices(range(1, USERS + 1), weights=weights, k=len(sizes))
    # 2015-01-01 .. 2025-12-31
    start, end = 1420070400, 1767139200
    total = 0
    block = rng.randbytes(8 * MIB)
    for i, (size, user) in enumerate(zip(sizes, users)):
        mtime = rng.randint(start, end)
        t = __import__("time").gmtime(mtime)
        folder = os.path.join(args.out, "users", f"u{user:03d}", f"{t.tm_year:04d}", f"{t.tm_mon:02d}")
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"f{i:05d}.bin")
        # A per-file prefix from the generator, then a rotating window of a shared random block:
        # every file differs from its first bytes on, and writing 2.7 GiB stays fast.
        head = rng.randbytes(min(size, 64 * KIB))
        with open(path, "wb") as f:
            f.write(head)
            left, offset = size - len(head), rng.randrange(len(block))
            while left > 0:
                chunk = block[offset : offset + left]
                f.write(chunk)
                left -= len(chunk)
                offset = 0
        os.utime(path, (mtime, mtime))
        total += size
    print(f"{len(sizes)} files, {total / (1024 ** 3):.2f} GiB in {args.out}")


if __name__ == "__main__":
    main()
