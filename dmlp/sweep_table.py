"""Assemble the results table of ``dmlp sweep`` (Markdown + CSV).

Usage: ``python -m dmlp.sweep_table --out-md T.md --out-csv T.csv NAME=DATA_DIR:RUN_DIR ...``

Each run contributes one row, in the order given: ``DATA_DIR/noise.json`` (written by
``dmlp noise``) gives the setting and the measured noise, ``RUN_DIR/summary.json`` (written by
``dmlp purify``: n_train, n_purified, n_meta, n_changed, seconds, label_accuracy_before,
label_accuracy_after, fractions in [0, 1]) gives the rest.  ``changed`` counts labels changed
among the purified rows, and its share is of the purified rows (meta rows and excluded rows
are never purified).  A run without a summary (it failed) still gets a row, marked
``failed``, so one bad setting does not hide the others.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

from .cli import ArgumentParser, run_cli
from .errors import InputError
from .io import save_text

SUMMARY_KEYS = ("n_train", "n_purified", "n_meta", "n_changed", "seconds", "label_accuracy_before",
                "label_accuracy_after")
CSV_COLUMNS = ("setting", "mode", "rate", "seed", "measured_noise", "label_accuracy_before",
               "label_accuracy_after", "n_changed", "n_purified", "n_train", "n_meta", "seconds", "status")


def _read_json(path: Path, what: str):
    try:
        with open(path, "r", encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{what} {path}: not valid JSON ({exc.__class__.__name__})") from None


def describe_setting(noise: dict) -> str:
    """A short human label such as 'sym 50% (seed 1)' from a noise.json dict."""
    source = noise.get("source", "synthetic")
    if source == "cifar-n":
        return f"CIFAR-N {noise.get('noise_type')}"
    text = f"{noise.get('mode') or 'file'}"
    if noise.get("rate") is not None:
        text += f" {100 * float(noise['rate']):g}%"
    if noise.get("exclude_true"):
        text += " excl. true"
    if noise.get("seed") is not None:
        text += f" (seed {noise['seed']})"
    return text


def collect_row(name: str, data_dir, run_dir) -> dict:
    """One table row (raw values, fractions) for run ``name``."""
    data_dir, run_dir = Path(data_dir), Path(run_dir)
    noise = _read_json(data_dir / "noise.json", "noise.json") or {}
    summary = _read_json(run_dir / "summary.json", "summary.json")
    row = {"name": name, "setting": describe_setting(noise) if noise else name,
           "mode": noise.get("mode"), "rate": noise.get("rate"), "seed": noise.get("seed"),
           "measured_noise": noise.get("measured_noise_rate"), "status": "ok"}
    if summary is None:
        row["status"] = "failed"
        return row
    missing = [k for k in SUMMARY_KEYS if k not in summary]
    if missing:
        raise InputError(f"summary.json {run_dir / 'summary.json'}: missing keys {', '.join(missing)}")
    row.update({k: summary[k] for k in SUMMARY_KEYS})
    return row


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * float(value):.2f}%"


def to_markdown(rows) -> str:
    lines = ["| setting | measured noise | label accuracy before → after | changed | seconds |",
             "|---|---:|---:|---:|---:|"]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| {r['setting']} | {_pct(r['measured_noise'])} | failed | | |")
            continue
        changed = int(r["n_changed"])
        share = f" ({100 * changed / r['n_purified']:.1f}%)" if r.get("n_purified") else ""
        lines.append(f"| {r['setting']} | {_pct(r['measured_noise'])} | "
                     f"{_pct(r['label_accuracy_before'])} → {_pct(r['label_accuracy_after'])} | "
                     f"{changed}{share} | {float(r['seconds']):.1f} |")
    return "\n".join(lines) + "\n"


def to_csv(rows) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in CSV_COLUMNS})
    return buf.getvalue()


def parse_run(spec: str):
    """'NAME=DATA_DIR:RUN_DIR' -> (name, data_dir, run_dir)."""
    name, sep, dirs = spec.partition("=")
    data_dir, sep2, run_dir = dirs.partition(":")
    if not (sep and sep2 and name and data_dir and run_dir):
        raise InputError(f"run spec {spec!r}: expected NAME=DATA_DIR:RUN_DIR")
    return name, data_dir, run_dir


def main(argv=None):
    p = ArgumentParser(prog="python -m dmlp.sweep_table", description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", metavar="NAME=DATA_DIR:RUN_DIR",
                   help="one per row, in table order: the dmlp noise --out folder and the dmlp purify --out folder")
    p.add_argument("--out-md", required=True, metavar="FILE.md", help="Markdown table to write")
    p.add_argument("--out-csv", required=True, metavar="FILE.csv", help="CSV table to write (fractions, not %%)")
    args = p.parse_args(argv)
    rows = [collect_row(*parse_run(spec)) for spec in args.runs]
    md = to_markdown(rows)
    save_text(args.out_md, md)
    save_text(args.out_csv, to_csv(rows))
    sys.stdout.write(md)
    return 1 if any(r["status"] != "ok" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
