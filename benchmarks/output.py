"""How the benchmark writes: Markdown tables, number cells, CSV files, a report that is printed
and written as the same strings."""
from __future__ import annotations

import csv
import math
import shlex
import sys
from pathlib import Path
from typing import List, Optional, Sequence


def md_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table; cells are written with ``str``."""
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _missing(x) -> bool:
    return x is None or x == "" or (isinstance(x, float) and math.isnan(x))


def pct(x, sd=float("nan")) -> str:
    """A fraction as a percentage with two decimals (``± sd`` when ``sd`` is a number); "–" for none."""
    if _missing(x):
        return "–"
    return f"{100 * x:.2f}" + (f" ± {100 * sd:.2f}" if sd == sd else "")


def num(x, fmt: str = "{:.1f}", sd=float("nan")) -> str:
    """A number in ``fmt`` (``± sd`` when ``sd`` is a number); "–" for none."""
    if _missing(x):
        return "–"
    return fmt.format(x) + ((" ± " + fmt.format(sd)) if sd == sd else "")


def write_csv(path: Path, rows: List[dict], fields: Sequence[str]) -> None:
    """Rows (dicts) as CSV with the columns ``fields``; floats with 6 significant digits."""
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(fields), extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def emit(text: str, out: Optional[str], script: str, argv) -> None:
    """Print a table's Markdown and, with ``out``, write it there under its command line."""
    print(text)
    if out:
        args = " ".join(map(shlex.quote, sys.argv[1:] if argv is None else argv))
        Path(out).write_text(f"Command: `python {script} {args}`\n\n" + text)


class Report:
    """Markdown sections printed as they come and written to ``path`` by :meth:`write` (the
    file holds the printed strings, not retyped ones)."""

    def __init__(self, path: Path):
        self.path, self.sections = Path(path), []

    def add(self, text: str) -> None:
        print(text + "\n", flush=True)
        self.sections.append(text)

    def write(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("\n\n".join(self.sections) + "\n")
        return self.path
