"""Benchmark: how long `konsumerator simulate` takes on a long, wide timeline.

Generates a Consumer with N partitions (1 per instance) and a timeline of S
steps of 10 s each, with a diurnal production rate, a few incidents that
build and drain backlogs, and a Prometheus outage, then runs the real CLI in
a subprocess and reports wall time, the subprocess's user and system CPU
seconds (on a shared machine wall time measures the neighbours too), steps per
second, output size and the output's MD5 (a faster replay must print the
same bytes).

`--predictor` sets the Consumer's predictor: `naive` (the default, and the
predictor the recorded checksums were made with) or `adaptive`.

    make bench-simulate BENCH_ARGS="--partitions 100 --steps 10000"
"""

import hashlib
import json
import math
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click
import yaml

from konsumerator_dev import clikit
from konsumerator_dev.paths import REPO as ROOT

DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def consumer(partitions: int, per_instance: int, predictor: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "consumer.yaml").read_text())
    doc["spec"]["autoscaler"]["predictor"] = predictor
    doc["spec"]["numPartitions"] = partitions
    doc["spec"]["numPartitionsPerInstance"] = per_instance
    doc["spec"]["resourcePolicy"].pop("globalPolicy")
    return doc


def timeline(*, partitions: int, steps: int, seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    backlog = [0.0] * partitions
    out = []
    for i in range(steps):
        t = i * 10
        metrics: dict[str, dict[str, float]] | str = {}
        assert isinstance(metrics, dict)
        for p in range(partitions):
            base = 1000 + 500 * math.sin(2 * math.pi * t / 86400) + 20 * (p % 7)
            incident = 3.0 if (i // 500) % 4 == 1 and p % 10 == 3 else 1.0
            production = base * incident
            consumption = min(backlog[p] / 10 + production, 1600.0)
            backlog[p] = max(0.0, backlog[p] + (production - consumption) * 10)
            metrics[str(p)] = {
                "production": round(production + rng.uniform(-5, 5), 2),
                "consumption": round(consumption, 2),
                "offset": round(backlog[p]),
            }
        if 3000 <= i < 3020:
            metrics = "unavailable"
        out.append({"advance": "10s" if i else "0s", "metrics": metrics})
    return {"steps": out}


@click.command("simulate", help=__doc__.splitlines()[0] if __doc__ else None)
@click.option("--partitions", type=int, default=100)
@click.option("--steps", type=int, default=10_000)
@click.option("--per-instance", type=int, default=1)
@click.option("--seed", type=int, default=1)
@click.option("--format", type=click.Choice(["json", "yaml"]), default="json")
@click.option("--predictor", type=click.Choice(["naive", "adaptive"]), default="naive")
def main(**options: Any) -> None:
    args = SimpleNamespace(**options)
    with tempfile.TemporaryDirectory() as tmp:
        c, tl = Path(tmp, "consumer.yaml"), Path(tmp, "timeline.yaml")
        c.write_text(yaml.safe_dump(consumer(args.partitions, args.per_instance, args.predictor)))
        data = timeline(partitions=args.partitions, steps=args.steps, seed=args.seed)
        tl.write_text(json.dumps(data) if args.format == "json" else yaml.dump(data, Dumper=DUMPER))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "konsumerator", "simulate", str(c), str(tl)],
            capture_output=True,
            check=True,
        )
        elapsed = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    lines = proc.stdout.count(b"\n")
    print(
        f"format={args.format} predictor={args.predictor} partitions={args.partitions} "
        f"per_instance={args.per_instance} "
        f"steps={args.steps} lines={lines} "
        f"wall={elapsed:.2f}s user={after.ru_utime - before.ru_utime:.2f}s "
        f"sys={after.ru_stime - before.ru_stime:.2f}s steps/s={args.steps / elapsed:.0f} "
        f"output={len(proc.stdout) / 1e6:.1f}MB md5={hashlib.md5(proc.stdout).hexdigest()}"
    )


if __name__ == "__main__":
    clikit.run(main, prog_name="konsumerator-dev bench simulate")
