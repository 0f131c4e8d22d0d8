"""The ``mfkit`` command line.

Chapter 1 adds ``mfkit data``; later chapters add ``recommend``, ``evaluate``,
``train`` and ``menu``.

Examples
--------
.. code-block:: console

    $ mfkit data                 # where ML-100K is, checksums, sizes
    $ mfkit data --variant ml-1m # downloads ML-1M (about 6 MB) if needed
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from mfkit import __version__, data


def _cmd_data(args: argparse.Namespace) -> None:
    names = data.verify(args.variant, progress=not args.quiet)
    folder = data.data_path(args.variant, progress=False)
    source = data.DATA_DIR_ENV if os.environ.get(data.DATA_DIR_ENV) else "download cache"
    ml = data.load_movielens(args.variant, progress=False)
    n_users, n_movies = ml.ratings["user_id"].nunique(), ml.ratings["movie_id"].nunique()
    density = len(ml.ratings) / (n_users * n_movies)
    print(f"{ml.name} in {folder} (from {source})")
    print(f"checksums: {len(names)} files OK")
    print(
        f"{len(ml.ratings):,} ratings by {len(ml.users):,} users of {len(ml.movies):,} movies; "
        f"{density:.2%} of the user x movie matrix is observed"
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``mfkit`` command."""
    parser = argparse.ArgumentParser(
        prog="mfkit",
        description="Recommender systems with PyTorch on MovieLens: the course's toolkit.",
        epilog=f"Data comes from ${data.DATA_DIR_ENV} if set, else it is downloaded and "
        "checked once. Run 'mfkit COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"mfkit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    show = commands.add_parser(
        "data",
        help="locate, verify and summarize a MovieLens dataset",
        description="Find (or download) a MovieLens dataset, check every file against its "
        "pinned SHA-256 and print its size.",
    )
    show.add_argument("--variant", choices=sorted(data.VARIANTS), default="ml-100k")
    show.add_argument("-q", "--quiet", action="store_true", help="no download progress bar")
    show.set_defaults(run=_cmd_data)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (data.ChecksumError, data.DataNotFoundError, data.DownloadError) as err:
        print(f"mfkit: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
