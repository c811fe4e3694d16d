"""`python -m trainables.data [--data-root DIR]`: which data sets are found under a root, what to do."""

from __future__ import annotations

import argparse
import os

from trainables.data import status_table


def main(argv: list[str] | None = None) -> int:
    """Prints the status table of every data set; returns 0."""
    parser = argparse.ArgumentParser(
        prog="python -m trainables.data",
        description=(
            "Checks which data sets (cifar10, svhn, celeba, pacs, digits) are present under a data root and"
            " prints, per data set: found or MISSING, image counts per split (per domain for pacs), the exact"
            " path looked at, and where to get the files when missing; then the attributes a data set documents"
            " (digits). Nothing is ever downloaded."
        ),
    )
    parser.add_argument(
        "--data-root",
        default=os.environ.get("ARML_DATA") or "./data",
        help="folder holding the data sets (default: $ARML_DATA, else ./data)",
    )
    args = parser.parse_args(argv)
    print(f"data root: {os.path.abspath(args.data_root)}")
    print(status_table(args.data_root))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
