#!/usr/bin/env python3
"""bench/mktree.py — a synthetic tree of many small files, fast (no shell loop).

    python3 bench/mktree.py DIR [DIRS [FILES]]      make DIR/dNNNN/fNNNN
    python3 bench/mktree.py --change DIR [EVERY]    append a line to every EVERY-th file

Sizes are 0-4 KiB, spread evenly and deterministically (the same tree on every run);
content is a slice of a fixed pseudo-random block, so it compresses like real data
rather than like zeros. --change touches every 100th file by default (1%).
"""
import os
import random
import sys


def make(root, dirs, files):
    rnd = random.Random(17)
    block = bytes(rnd.getrandbits(8) for _ in range(1 << 16))
    os.makedirs(root, exist_ok=True)
    n = 0
    for d in range(dirs):
        dp = os.path.join(root, "d%04d" % d)
        os.mkdir(dp)
        for f in range(files):
            size = (n * 2654435761) % 4097
            start = (n * 40503) % (len(block) - 4097)
            fd = os.open(os.path.join(dp, "f%04d" % f), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            if size:
                os.write(fd, block[start:start + size])
            os.close(fd)
            n += 1
    return n


def change(root, every):
    n, changed = 0, 0
    for d in sorted(os.listdir(root)):
        dp = os.path.join(root, d)
        for f in sorted(os.listdir(dp)):
            if n % every == every - 1:
                with open(os.path.join(dp, f), "ab") as fh:
                    fh.write(b"changed\n")
                changed += 1
            n += 1
    return changed


if __name__ == "__main__":
    a = sys.argv[1:]
    if a and a[0] == "--change":
        print(change(a[1], int(a[2]) if len(a) > 2 else 100))
    else:
        print(make(a[0], int(a[1]) if len(a) > 1 else 1000, int(a[2]) if len(a) > 2 else 1000))
