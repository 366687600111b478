#!/usr/bin/env python3
"""A fake embedding program for ``routing.embed``: texts on stdin, one vector per line out.

Usage: embed.py [--mode MODE] [--log FILE] [--dim N]

The vector of a text is deterministic: its lowercase words hashed (md5) into ``--dim`` buckets,
counted. Modes break the protocol on purpose:

    ok          one JSON array per text
    plain       numbers separated by spaces (the other accepted form)
    commas      numbers separated by commas
    fail        print nothing, exit 2 with a message on stderr
    short       one vector fewer than the texts
    ragged      the second vector one number shorter
    words       a line that is not numbers
    nan         a vector holding NaN
    slow        sleep 30 s (for timeouts)

With --log FILE every text received is appended to FILE, one per line (tests check what the
program was sent).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import time


def vector(text: str, dim: int) -> list[float]:
    vec = [0.0] * dim
    for word in re.findall(r"\w+", text.lower()):
        vec[int(hashlib.md5(word.encode()).hexdigest(), 16) % dim] += 1.0
    return vec


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", default="ok")
    ap.add_argument("--log")
    ap.add_argument("--dim", type=int, default=64)
    args = ap.parse_args()
    texts = sys.stdin.read().splitlines()
    if args.log:
        with open(args.log, "a", encoding="utf-8") as f:
            f.writelines(t + "\n" for t in texts)
    if args.mode == "fail":
        sys.stderr.write("model not found: fake-embed\n")
        return 2
    if args.mode == "slow":
        time.sleep(30)
    vectors = [vector(t, args.dim) for t in texts]
    if args.mode == "short":
        vectors = vectors[:-1]
    if args.mode == "ragged" and len(vectors) > 1:
        vectors[1] = vectors[1][:-1]
    if args.mode == "nan" and vectors:
        vectors[0][0] = float("nan")
    for i, v in enumerate(vectors):
        if args.mode == "words" and i == 0:
            print("not a vector")
        elif args.mode == "plain":
            print(" ".join(f"{x:g}" for x in v))
        elif args.mode == "commas":
            print(",".join(f"{x:g}" for x in v))
        else:
            print(json.dumps(v))
    return 0


if __name__ == "__main__":
    sys.exit(main())
