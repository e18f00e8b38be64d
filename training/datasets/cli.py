"""The command line: neural-painters-dataset (or python -m neural_painters_training.datasets)."""
from __future__ import annotations

import argparse
import os
import sys

from painter_models.brush.actions import LAYOUTS, NAKANO
from .format import DatasetError, read_manifest
from .generation import generate, verify

def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="neural-painters-dataset",
        description="Generate a stroke dataset (random actions and the strokes a painting program renders for "
                    "them) into checksummed shards. Re-running the same command continues an interrupted run.")
    p.add_argument("--out", required=True, help="dataset folder (created; re-run to resume)")
    p.add_argument("--brush", default="classic/dry_brush",
                   help="MyPaint preset name or .myb path, or 'raster' for the torch rasteriser (default: %(default)s)")
    p.add_argument("--count", type=int, default=100_000, help="number of strokes (default: %(default)s)")
    p.add_argument("--shard-size", type=int, default=10_000, help="strokes per shard file (default: %(default)s)")
    p.add_argument("--size", type=int, default=64, help="stroke size in pixels (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the actions (default: %(default)s)")
    p.add_argument("--brush-seed", type=int, default=0, help="MyPaint brush randomness variant (default: %(default)s)")
    p.add_argument("--workers", type=int, default=max(1, min(8, os.cpu_count() or 1)),
                   help="MyPaint rendering processes (default: %(default)s)")
    p.add_argument("--layout", default=NAKANO.name, choices=sorted(LAYOUTS),
                   help="action layout (default: %(default)s)")
    p.add_argument("--verify", action="store_true", help="only check the dataset in --out: every shard's checksum")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if args.verify:
        problems = verify(args.out)
        if problems:
            for line in problems:
                print("error: " + line, file=sys.stderr)
            return 1
        m = read_manifest(args.out)
        print(f"{args.out}: OK: {m['count']} strokes of {m['brush']} at {m['stroke_size']} px in {len(m['shards'])} "
              f"shards, every checksum matches")
        return 0
    try:
        generate(args.out, args.brush, args.count, args.shard_size, args.size, args.seed, args.workers,
                 args.brush_seed, args.layout, progress=not args.quiet)
    except DatasetError as e:
        print("error: " + str(e), file=sys.stderr)
        return 2
    except (ValueError, RuntimeError) as e:  # bad size, MyPaint missing (MyPaintUnavailable says what to install)
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted: re-run the same command to continue {args.out}", file=sys.stderr)
        return 130
    return 0
