"""Command line: ``python -m dataset_tools {fetch,verify,split,sample} ...``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fcnkit.data import SAMPLE_ROOT, DataError
from .fetch import OFFICIAL_URL, FetchError, fetch
from .sample import build_sample
from .split import make_split, write_split
from .verify import verify


def _report(problems: list[str], root) -> int:
    for problem in problems:
        print(f"PROBLEM {problem}")
    if problems:
        print(f"{root}: {len(problems)} problem(s) found; nothing was changed.")
        return 1
    print(f"{root}: OK, all 606 pairs present and identical to the original.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dataset_tools", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("fetch", help="download (or copy) and extract the dataset, then verify it")
    p.add_argument("--dest", required=True, type=Path, help="folder to create base/ and extended/ in")
    p.add_argument("--from", dest="source", type=Path,
                   help="folder holding the two official zips, or base/ and extended/ folders (no network)")
    p.add_argument("--url", default=OFFICIAL_URL, help=f"where the zips are (default {OFFICIAL_URL})")

    p = commands.add_parser("verify", help="check a copy: pairs, sizes, label values, checksums")
    p.add_argument("root", type=Path)

    p = commands.add_parser("split", help="write split files ROOT/splits/{train,val,test}.txt")
    p.add_argument("root", type=Path)
    p.add_argument("--seed", type=int, help="a seeded random split of the original proportions")
    p.add_argument("--test-list", type=Path, help="file of ids (one a line) to hold out as the test split")
    p.add_argument("--out", type=Path, help="folder for the split files (default ROOT/splits)")
    p.add_argument("--force", action="store_true", help="replace existing split files")

    p = commands.add_parser("sample", help="build the small downscaled sample shipped in fcnkit")
    p.add_argument("source", type=Path, help="a full copy of the dataset")
    p.add_argument("--dest", type=Path, default=SAMPLE_ROOT)
    p.add_argument("--max-side", type=int, default=192)
    p.add_argument("--force", action="store_true", help="rebuild an existing sample")

    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            return _report(fetch(args.dest, args.source, args.url), args.dest)
        if args.command == "verify":
            return _report(verify(args.root), args.root)
        if args.command == "split":
            test_ids = args.test_list.read_text().split() if args.test_list else None
            split = make_split(args.root, seed=args.seed, test_ids=test_ids)
            for path in write_split(split, args.out or args.root / "splits", force=args.force):
                print(f"wrote {path} ({len(path.read_text().split())} ids)")
            return 0
        if args.command == "sample":
            ids = build_sample(args.source, args.dest, args.max_side, force=args.force)
            print(f"wrote {sum(map(len, ids.values()))} pairs to {args.dest}")
            return 0
    except (FetchError, DataError, FileExistsError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
