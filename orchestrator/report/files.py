"""How the report writes its files: tables as CSV rounded the same way everywhere, Markdown with a final newline,
each under a temporary name first (a Ctrl-C never leaves half a file), and a table's numbers as its CSV holds
them, for the figures drawn from it."""

from __future__ import annotations

import os

import pandas as pd

from orchestrator.store.folder import atomic_path

FLOAT_FORMAT = "%.6g"


def published(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with its numbers as its CSV holds them (rounded to 9 decimals, then 6 significant digits): a figure
    drawn from a table shows what the table publishes."""
    out = frame.round(9)
    for column in out.columns:
        if pd.api.types.is_float_dtype(out[column]):
            out[column] = out[column].map(lambda x: x if x != x else float(FLOAT_FORMAT % x))
    return out


def write_csv(frame: pd.DataFrame, folder: str, name: str) -> None:
    # rounded first: a CI of identical values is 1e-16, not 0, and that noise differs between machines
    with atomic_path(os.path.join(folder, name)) as temporary:
        frame.round(9).to_csv(temporary, index=False, float_format=FLOAT_FORMAT, lineterminator="\n")


def write_text(text: str, folder: str, name: str) -> None:
    with atomic_path(os.path.join(folder, name)) as temporary, open(temporary, "w") as f:
        f.write(text if text.endswith("\n") else text + "\n")
