#!/usr/bin/env python3
"""How much of the default model's held-out accuracy is its training seed: ``openworld`` retrained
with several seeds (and, if asked, other ``[training] calibration`` settings), each scored on the
held-out snapshots of ``bench_accuracy.py --models openworld``, summarised per model.

    python benchmarks/bench_openworld_seeds.py [--seeds 13 14 15] [--calibration '"one per run"' 0.2]
                                               [--work /tmp/openworld-seeds] [--extra FILE.md ...]

The shipped model is trained with the config's own seed (13); the other seeds only measure the
spread, none is chosen. ``--extra`` adds rows summarised from accuracy sections written earlier
(e.g. by models trained on other data). Results go to section ``openworld-seeds`` of
``benchmarks/RESULTS.md``.
"""
from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from results_file import replace_section, section  # noqa: E402

COLUMNS = {  # summary -> what it is
    "hot diamonds": "mean over the held-out diamond rows at 0.85 and 0.9 T_m",
    "crystal rows below the best OVITO": "crystal rows (every class but Liquid, glasses left out) below the best OVITO method",
    "liquid rows": "mean over the held-out liquid rows",
    "defect rows": "mean over the defect rows",
    "rows at 0.5 T_m below 99%": "defect rows at 0.5 T_m scored on the lattice (5 Å from the defect, third layer inwards, no Liquid) below 99%",
    "σ-Ta Other": "held-out σ-Ta (no class describes it): share Other",
    "void and crack Other": "mean share Other of the void and crack surface atoms that must be Other",
}


def percent(cell: str):
    try:
        return float(cell.rstrip("%"))
    except ValueError:
        return None


def parse(text: str):
    """(subsection heading, cells) of every table row of bench_accuracy's openworld section."""
    heading, rows = None, []
    for line in text.splitlines():
        if line.startswith("####"):
            heading = line
        elif line.startswith("|") and not line.startswith("|---"):
            cells = [c.strip() for c in line.split("|")][1:-1]
            if cells[0] not in ("run", "defect", "structure"):
                rows.append((heading, cells))
    return rows


def summary(text: str) -> dict:
    rows = parse(text)
    bulk = [c for h, c in rows if "Bulk" in h]
    defects = [c for h, c in rows if "Defects" in h]
    ood = [c for h, c in rows if "Out of" in h and len(c) >= 10]
    crystals = [c for c in bulk if c[2] != "Liquid" and not c[0].startswith("glass")]
    at_half = [c for c in defects if c[1] == "0.5" and any(w in c[0] for w in ("≥ 5 Å", "third", "not Liquid"))]
    return {
        "hot diamonds": statistics.mean(percent(c[4]) for c in bulk if "diamond" in c[2] and c[1] in ("0.85", "0.9")),
        "crystal rows below the best OVITO": sum(percent(c[4]) < percent(c[-1]) for c in crystals),
        "liquid rows": statistics.mean(percent(c[4]) for c in bulk if c[2] == "Liquid"),
        "defect rows": statistics.mean(percent(c[3]) for c in defects),
        "rows at 0.5 T_m below 99%": sum(percent(c[3]) < 99 for c in at_half),
        "σ-Ta Other": next(percent(c[3]) for c in ood if "Sigma" in c[0]),
        "void and crack Other": statistics.mean(percent(c[3]) for c in ood if c[0].startswith(("crack", "void"))),
    }


def scored(model_path: Path) -> str:
    """bench_accuracy's openworld tables for one model file."""
    import bench_accuracy
    return bench_accuracy.openworld([str(model_path)])[0]


def train(seed: int, calibration: str, work: Path) -> Path:
    from ovito_mlclass.training.train import train as train_model
    config = (HERE.parent / "ovito_mlclass" / "training" / "configs" / "openworld.toml").read_text()
    config = re.sub(r"(?m)^seed = .*$", f"seed = {seed}", config)
    config = re.sub(r"(?m)^calibration = .*$", f"calibration = {calibration}", config)
    tag = re.sub(r"\W+", "-", calibration.strip('"'))
    path = work / f"openworld_{tag}_seed{seed}.toml"
    path.write_text(config)
    return Path(train_model(path, output=path.with_suffix(".pt"), progress=False))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[13, 14, 15])
    parser.add_argument("--calibration", nargs="+", default=['"one per run"'],
                        help="[training] calibration values, as TOML (a quoted string or a fraction)")
    parser.add_argument("--work", default="/tmp/openworld-seeds")
    parser.add_argument("--extra", nargs="*", default=[], help="LABEL=FILE: a copy of RESULTS.md whose accuracy-openworld section scored an openworld model")
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    groups = {}
    for label_file in args.extra:
        label, file = label_file.rsplit("=", 1)
        groups.setdefault(label, []).append(summary(section(Path(file).read_text(), "accuracy-openworld")))
    for calibration in args.calibration:
        for seed in args.seeds:
            print(f"calibration {calibration}, seed {seed}", file=sys.stderr, flush=True)
            model = train(seed, calibration, work)
            groups.setdefault(f"calibration = {calibration} (this data)", []).append(summary(scored(model)))
    lines = ["## The default model over training seeds", "",
             f"`python benchmarks/bench_openworld_seeds.py {' '.join(sys.argv[1:])}`, "
             f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. `openworld` retrained with seeds {args.seeds} "
             "(the shipped model: seed 13, the config's), each scored on the held-out snapshots of "
             "`bench_accuracy.py --models openworld`; mean, then the range over the seeds in brackets.", "",
             "| training | seeds | " + " | ".join(COLUMNS) + " |", "|---|---|" + "---|" * len(COLUMNS)]
    for label, runs in groups.items():
        cells = []
        for key in COLUMNS:
            values = [r[key] for r in runs]
            fmt = "{:.0f}" if key.endswith(("OVITO", "99%")) else "{:.2f}"
            cells.append(fmt.format(statistics.mean(values)) + " (" + "–".join(fmt.format(v) for v in (min(values), max(values))) + ")")
        lines.append(f"| {label} | {len(runs)} | " + " | ".join(cells) + " |")
    lines += ["", "Columns: " + "; ".join(f"*{k}*: {v}" for k, v in COLUMNS.items()) + ".", "",
              f"(wall time {time.time() - started:.0f} s)"]
    print(replace_section(args.output, "openworld-seeds", "\n".join(lines)))


if __name__ == "__main__":
    main()
