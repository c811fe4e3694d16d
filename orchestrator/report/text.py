"""How the report writes numbers in words and Markdown: a label budget ('250 labels'), an accuracy with its
interval ('85.20 ± 1.10'), seconds, points and seeds with the right plural, and a Markdown table."""

from __future__ import annotations

import math

from orchestrator.study.vocabulary import BY_FIELD


def budget_text(key: str, budget: float) -> str:
    """'250 labels', '5/class', '1% labels'; 'all' without a budget."""
    if budget is None or (isinstance(budget, float) and math.isnan(budget)):
        return "all"
    kind = BY_FIELD.get(key)
    return kind.text(budget) if kind else f"{budget:g}"


def pct(mean: float, half: float, seeds: int | None = None, planned: int | None = None) -> str:
    """'85.20 ± 1.10' (percent); no ± with one seed; '(2/3 seeds)' when seeds are missing."""
    if mean is None or math.isnan(mean):
        return "-"
    text = f"{100 * mean:.2f}" + ("" if half is None or math.isnan(half) else f" ± {100 * half:.2f}")
    if seeds is not None and planned is not None and seeds < planned:
        text += f" ({seeds}/{planned} seeds)"
    return text


def seconds(value: float) -> str:
    """'0.4', '12.3', '1234' (one decimal below 100 s)."""
    return f"{value:.1f}" if abs(value) < 100 else f"{value:.0f}"


def points_text(value: float) -> str:
    """'1 point', '0.5 points', '2 points': an amount of accuracy points in words."""
    return f"{value:g} point" + ("" if value == 1 else "s")


def seeds_text(n: int) -> str:
    """'1 seed', '3 seeds'."""
    return f"{n} seed" + ("" if n == 1 else "s")


def md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
