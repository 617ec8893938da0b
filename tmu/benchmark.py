"""`python -m tmu benchmark`: every method over several seeds, forget settings and datasets,
against the gold models and their noise floor, written as markdown (with the exact command and the
machine) plus one bar chart per setting.

A `*` class in a setting is the forget-spec grammar's seed class (tmu.forget: `subclass:*:0.1`
forgets 10 % of class 1, 3, 5, 7, 9, 0, 2, ... for seeds 0, 1, 2, ...), so sub-class results
average over several classes. All
runs of one invocation share a fresh run store: a seed's original model is trained once and reused
by its settings, and every time ratio compares a method with gold retrains timed in the same run.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import evaluate as ev
from .artifacts import Store
from .config import RunConfig, from_dict
from .jobs import JobKind, JobQueue, Progress, register_job_kind
from .models import apply_recipe, device_label, resolve_device
from .pipeline import Result, execute, plan_stages
from .report import Probs, evaluate_result, model_probs
from .runs import write_run
from .sweep import local_queue, run_jobs
from .unlearn import Env, get_method

logger = logging.getLogger(__name__)

DELTA = "\\|Δ_f\\|"
CLOSED = "gap closed"
COLUMNS = (
    "acc_f",
    DELTA,
    CLOSED,
    "agreement",
    "per-class Δ",
    "test acc",
    "MIA gap",
    "time / retrain",
)


def method_row(report: dict, name: str) -> dict[str, float]:
    """The benchmark figures of one model in one run's report. MIA gap: |member rate on D_f -
    the golds' mean|; gap closed: 1 - |Δ_f| / the original's |Δ_f| (1: at gold, 0: where the
    original is, below 0: further away; NaN when the original is at gold already)."""
    e, golds = report["models"][name], report["models"]["gold"]
    gold_mia = np.mean([g["mia"]["forget_member_rate"] for g in golds])
    delta, start = e["vs_gold"]["delta_forget"], report["models"]["original"]["vs_gold"]
    start = start["delta_forget"]
    return {
        "acc_f": e["acc"]["forget"],
        DELTA: delta,
        CLOSED: 1.0 - delta / start if start > 0 else float("nan"),
        "agreement": e["vs_gold"]["agreement_forget"],
        "per-class Δ": e["vs_gold"]["per_class_delta_forget"],
        "test acc": e["acc"]["test"],
        "MIA gap": abs(e["mia"]["forget_member_rate"] - gold_mia),
        "time / retrain": e.get("retrain_time_ratio", 0.0),
    }


def floor_row(report: dict) -> dict[str, float]:
    f, golds = report["noise_floor"] or {}, report["models"]["gold"]
    mia = [g["mia"]["forget_member_rate"] for g in golds]
    return {
        "acc_f": float(np.mean([g["acc"]["forget"] for g in golds])),
        DELTA: f.get("delta_forget", float("nan")),
        CLOSED: float("nan"),
        "agreement": f.get("agreement_forget", float("nan")),
        "per-class Δ": f.get("per_class_delta_forget", float("nan")),
        "test acc": float(np.mean([g["acc"]["test"] for g in golds])),
        "MIA gap": float(
            np.mean([abs(a - b) for i, a in enumerate(mia) for b in mia[i + 1 :]] or [np.nan])
        ),
        "time / retrain": 1.0,
    }


ORIGINAL, FLOOR = "original (no unlearning)", "gold vs gold (noise floor)"
RANDOM_FLIPS = "control: random flips (rate rule's count)"
ORACLE = "control: oracle flips (gold's wrong set)"
LABEL_ORACLE = "control: label oracle (gold's wrong set, to gold's class)"
CONTROLS = (RANDOM_FLIPS, ORACLE, LABEL_ORACLE)
CONTROL_PARAMS = {"oversample": 10}
"""The controls' fixed unlearning strength (TMU's defaults otherwise): the strongest point of
TMU's grid, whatever TMU's own twin-tuning chose, so that a control that flips nothing is a
finding about its mask, never about a tuned-away step."""


def control_problems(result: Result, golds: list[np.ndarray]) -> dict[str, object]:
    """The controls' unlearning problems: TMU's step from the original with three other easy /
    hard masks. `random`: as many random forget samples hard as the rate rule flips (the twin's
    estimate of gold's errors; is the predictor better than chance?); `oracle`: the gold
    ensemble's wrong set, flipped to the label TMU's twin chose (a perfect predictor);
    `label oracle`: the same set flipped to the gold ensemble's own class (the ceiling of any
    flip policy). Benchmark controls only: the oracles read the gold models, which no method
    may. `golds`: each gold seed's softmax on D_f, as evaluated."""
    data, twin = result.data, result.twin
    if twin is None:
        return {}
    forget = data.splits.forget
    gold = np.mean(golds, axis=0).argmax(1)
    wrong = gold != data.labels[forget]
    n_hard = int(round((1.0 - twin.predictor.easy_rate) * len(forget)))
    rng = np.random.default_rng([result.cfg.seed, 0xC0])
    shuffled = np.ones(len(forget), dtype=bool)
    shuffled[rng.choice(len(forget), size=n_hard, replace=False)] = False
    policy = twin.predictor.flip_label
    return {
        RANDOM_FLIPS: data.problem(shuffled, flip_policy=policy),
        ORACLE: data.problem(~wrong, flip_policy=policy),
        LABEL_ORACLE: replace(data.problem(~wrong), flip_labels=gold),
    }


def control_method(cfg: RunConfig):
    """TMU's step at the controls' fixed strength `CONTROL_PARAMS` (a user's explicit
    `method_params.tmu` still wins)."""
    return get_method("tmu", **{**CONTROL_PARAMS, **cfg.method_params.get("tmu", {})})


def control_models(result: Result, golds: list[np.ndarray]) -> dict[str, tuple]:
    """Each control's (unlearned model, its flips: `Method.flips`) by `control_method`."""
    data, cfg = result.data, result.cfg
    method = control_method(cfg)
    env = Env(data.device, cfg.seed, data.build)
    original = result.trained.original.model
    return {
        name: (method.unlearn(original, problem, env), method.flips(original, problem, env))
        for name, problem in control_problems(result, golds).items()
    }


def add_controls(report: dict, result: Result, probs: Probs) -> dict:
    """`report` with the control models' entries under report["controls"] (each with how many
    of its flips took effect); `probs` are the run's evaluated softmax outputs (the gold models'
    are reused)."""
    golds = [probs[f"gold_{k}"]["forget"] for k in range(len(result.trained.golds))]
    controls = control_models(result, golds)
    if not controls:
        return report
    s, data = result.data.splits, result.data
    y = {k: data.labels[getattr(s, k)] for k in ev.SETS}
    outputs = model_probs(data, {name: model for name, (model, _) in controls.items()})
    gold = np.mean(golds, axis=0)
    report["controls"] = {
        name: {
            **ev.model_summary(p, y, data.pool.num_classes),
            "vs_gold": ev.vs_golds(p["forget"], golds, y["forget"], data.pool.num_classes),
            "flips": ev.flip_effect(p["forget"], y["forget"], *controls[name][1], gold),
            "params": control_method(result.cfg).params,
        }
        for name, p in outputs.items()
    }
    return report


def collect(reports: list[dict]) -> dict[str, list[dict[str, float]]]:
    """Rows per model name over the seeds: original, each method entry, the controls where the
    reports have them, and the gold noise floor."""
    rows = {ORIGINAL: [method_row(r, "original") for r in reports]}
    rows.update({m: [method_row(r, m) for r in reports] for m in reports[0]["methods"]})
    for name in reports[0].get("controls", {}):
        rows[name] = [
            method_row({"models": {**r["models"], **r["controls"]}}, name) for r in reports
        ]
    rows[FLOOR] = [floor_row(r) for r in reports]
    return rows


def paired_ci(diffs: np.ndarray, seed: int = 0, n_boot: int = 10_000) -> tuple[float, float, float]:
    """Mean of paired differences and its 95 % percentile-bootstrap confidence interval."""
    diffs = np.asarray(diffs, dtype=float)
    rng = np.random.default_rng(seed)
    means = diffs[rng.integers(0, len(diffs), size=(n_boot, len(diffs)))].mean(1)
    return float(diffs.mean()), float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def sign_test(diffs: np.ndarray) -> float:
    """Two-sided sign test of paired differences (zeros dropped): the binomial p-value of as many
    positive signs under a fair coin (1.0 when every difference is zero)."""
    from scipy.stats import binomtest

    d = np.asarray(diffs, dtype=float)
    d = d[d != 0]
    return float(binomtest(int((d > 0).sum()), len(d), 0.5).pvalue) if len(d) else 1.0


def paired_table(reports: list[dict], metric: str, better: str, of: str = "tmu") -> list[str]:
    """`of` minus every other row on `metric`, per seed, as mean [95 % CI], its wins and the
    sign test's p-value. `better` is "higher" or "lower"."""
    rows = collect(reports)
    if of not in rows:
        return []
    mine = np.array([r[metric] for r in rows[of]])
    lines = [
        f"`{of}` minus each other model, {metric} ({better} is better), paired by seed:",
        "",
        f"| vs | mean difference | 95 % bootstrap CI | `{of}` better / ties / seeds | "
        "sign test p |",
        "|---|---|---|---|---|",
    ]
    for name, rs in rows.items():
        if name in (of, FLOOR):
            continue
        diff = mine - np.array([r[metric] for r in rs])
        mean, lo, hi = paired_ci(diff)
        wins = int((diff > 0).sum() if better == "higher" else (diff < 0).sum())
        ties = int((diff == 0).sum())
        lines.append(
            f"| {name} | {mean:+.4f} | [{lo:+.4f}, {hi:+.4f}] | {wins} / {ties} / {len(diff)} "
            f"| {sign_test(diff):.3g} |"
        )
    return lines + [""]


def flips_line(reports: list[dict]) -> list[str]:
    """Mean flips per model that flips (TMU's entries and the controls) and how many took
    effect: moved off the given label, landed on the flip label, flip label = gold's class."""
    parts = []
    for name in [*reports[0]["methods"], *reports[0].get("controls", {})]:
        entries = [{**r["models"], **r.get("controls", {})}[name] for r in reports]
        if "flips" not in entries[0]:
            continue
        mean = {k: np.mean([e["flips"][k] for e in entries]) for k in entries[0]["flips"]}
        parts.append(
            f"{name}: {mean['flips']:.1f} flips, {mean['moved']:.1f} moved, "
            f"{mean['landed']:.1f} landed, {mean.get('on_gold', float('nan')):.1f} on gold's class"
        )
    return [f"Flips per request (mean over seeds) — {'; '.join(parts)}.", ""] if parts else []


def _nan(value: float | None) -> float:
    return np.nan if value is None else value


def fmt(values: list[float]) -> str:
    v = np.asarray(values, dtype=float)
    return "n/a" if np.isnan(v).all() else f"{np.nanmean(v):.3f} ± {np.nanstd(v):.3f}"


def setting_table(title: str, reports: list[dict], figure: str | None) -> list[str]:
    rows = collect(reports)
    seeds = sorted(r["config"]["seed"] for r in reports)
    lines = [
        f"### {title} ({len(reports)} seeds: {seeds[0]}..{seeds[-1]}, "
        f"|D_f| = {reports[0]['dataset']['sizes']['forget']})",
        "",
        "| method | " + " | ".join(COLUMNS) + " |",
        "|---" * (len(COLUMNS) + 1) + "|",
    ]
    lines += [
        f"| {name} | " + " | ".join(fmt([r[c] for r in rs]) for c in COLUMNS) + " |"
        for name, rs in rows.items()
    ]
    if "tmu" in reports[0]["models"]:
        tmu = [r["models"]["tmu"] for r in reports]
        lines += [
            "",
            f"TMU twin preparation / retrain: {fmt([t['prep_retrain_time_ratio'] for t in tmu])}; "
            f"preparation + request / retrain: "
            f"{fmt([t['prep_retrain_time_ratio'] + t['retrain_time_ratio'] for t in tmu])}; "
            "predictor balanced accuracy: "
            f"{fmt([r['predictor']['balanced_accuracy'] for r in reports])}, AUROC "
            f"{fmt([_nan(r['predictor'].get('auroc')) for r in reports])}, predicted hard "
            f"{fmt([r['predictor']['predicted_hard'] for r in reports])} vs true hard "
            f"{fmt([r['predictor']['true_hard'] for r in reports])}; "
            f"mean gold retrain {np.mean([r['gold_seconds'] for r in reports]):.1f} s.",
        ]
    if figure:
        lines += ["", f"![{title}]({figure})"]
    lines.append("")
    lines += flips_line(reports)
    for metric, better in (("agreement", "higher"), (DELTA, "lower"), ("MIA gap", "lower")):
        lines += paired_table(reports, metric, better)
    return lines


def delta_figure(title: str, reports: list[dict], path: Path) -> None:
    """Bars of mean |Δ_f| per method (std as error bars) with the gold-vs-gold band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = collect(reports)
    floor = [r[DELTA] for r in rows.pop(FLOOR)]
    names = list(rows)
    means = [np.mean([r[DELTA] for r in rows[n]]) for n in names]
    stds = [np.std([r[DELTA] for r in rows[n]]) for n in names]
    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.axhspan(
        0, np.nanmean(floor) + np.nanstd(floor), color="#c7e9c0", label="gold-vs-gold noise floor"
    )
    ax.bar(
        range(len(names)),
        means,
        yerr=stds,
        color=["#999999"] + ["#1f77b4"] * (len(names) - 1),
        capsize=3,
    )
    ax.set_xticks(
        range(len(names)),
        [n.replace(" (no unlearning)", "") for n in names],
        rotation=35,
        ha="right",
    )
    ax.set_ylabel("|Δ_f| to gold")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def machine() -> str:
    device = resolve_device("auto")
    return (
        f"{platform.platform()}, {os.cpu_count()} CPU cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), device {device_label(device)}, Python "
        f"{platform.python_version()}"
    )


def bench_task(cfg: RunConfig, store: Store, out: Path, progress: Progress) -> None:
    """The `bench` job kind: a run folder whose report also holds the controls."""
    result = execute(cfg, store=store, progress=progress)
    report, probs = evaluate_result(result)
    write_run(result, add_controls(report, result, probs), probs, out)


BENCH = register_job_kind(JobKind("bench", bench_task, plan_stages, "report.json"))


def run_grid(queue: JobQueue, cfgs: list[RunConfig], controls: bool) -> list[dict]:
    """Every config as a job on `queue` (all at once: a cluster runs them in parallel); their
    reports, in order. A failed run stops the benchmark with its error."""
    import json

    reports = []
    for cfg, res in zip(cfgs, run_jobs(queue, cfgs, kind="bench" if controls else "run")):
        if isinstance(res, str):
            raise RuntimeError(f"benchmark run {cfg.dataset} {cfg.forget} seed {cfg.seed}: {res}")
        reports.append(json.loads((res / "report.json").read_text()))
    return reports


def cases(
    datasets: list[str], settings: list[str], scenarios: list[str], base: dict
) -> list[tuple[str, str, dict]]:
    """(title, file slug, RunConfig values) per benchmark case: every dataset x forget setting,
    then every named scenario (its values under `base`: what the command gives wins)."""
    from .scenarios import scenario_values

    out = []
    for d in datasets:
        for s in settings:
            slug = f"{d}-" + s.replace(":", "_").replace("*", "C").replace(",", "-")
            out.append((f"`{d}`, `{s}`", slug, {**base, "dataset": d, "forget": s}))
    for name in scenarios:
        values = apply_recipe(scenario_values(name, base))
        out.append((f"scenario `{name}`", name, values))
    return out


def run_benchmark(
    *,
    datasets: list[str],
    settings: list[str],
    seeds: int,
    methods: tuple[str, ...] | None,
    out: Path,
    scenarios: list[str] = (),
    first_seed: int = 0,
    controls: bool = False,
    store: Store | None = None,
    device: str = "auto",
    gold_seeds: int = 3,
    twin_tune: tuple[str, ...] = (),
    stop_at_target: tuple[str, ...] = (),
    overrides: dict | None = None,
    queue: Callable[[Store], JobQueue] | None = None,
    reports_out: Path | None = None,
) -> str:
    """Run every case (dataset x setting, and every scenario) for each seed, write the markdown
    to `out` (figures beside it), return it; `reports_out` also gets every run's report as JSON.
    `methods=None` runs a scenario's own methods (RunConfig's default for a setting).
    `queue(store)` gives the job queue the runs go through (default: one at a time in this
    process; `tmu.sweep.ray_queue` for a Ray cluster)."""
    import json

    start, sections = time.perf_counter(), []
    base = {
        **(overrides or {}),
        "gold_seeds": gold_seeds,
        "device": device,
        "twin_tune": list(twin_tune),
        "stop_at_target": list(stop_at_target),
    }
    if methods is not None:
        base["methods"] = list(methods)
    grid = cases(datasets, settings, list(scenarios), base)
    seed_range = range(first_seed, first_seed + seeds)
    cfgs = [
        from_dict(RunConfig, apply_recipe({**values, "seed": seed}))
        for _, _, values in grid
        for seed in seed_range
    ]
    with tempfile.TemporaryDirectory() as tmp:
        all_reports = run_grid((queue or local_queue)(store or Store(tmp)), cfgs, controls)
        for k, (title, slug, _) in enumerate(grid):
            reports = all_reports[k * seeds : (k + 1) * seeds]
            fig = f"bench-{slug}.png"
            delta_figure(title.replace("`", ""), reports, out.parent / fig)
            sections += setting_table(title, reports, fig)
    if reports_out is not None:
        reports_out.parent.mkdir(parents=True, exist_ok=True)
        reports_out.write_text(json.dumps(all_reports))
    names = [*datasets, *(f"scenario {n}" for n in scenarios)] if scenarios else datasets
    text = "\n".join(
        [
            f"## Benchmark: {', '.join(names)}"
            + (f" × {', '.join(settings)}" if settings and datasets else ""),
            "",
            f"Command: `python -m tmu {' '.join(sys.argv[1:]) if sys.argv[1:] else 'benchmark'}`  ",
            f"Machine: {machine()}  ",
            f"Wall time of the whole benchmark: {time.perf_counter() - start:.0f} s",
            "",
            "Mean ± std over seeds. \\|Δ_f\\|, agreement and per-class Δ compare each model with "
            "every gold seed on the forget set (averaged); MIA gap is |forget member rate − "
            "golds'| "
            "(for the floor: between gold seeds); time / retrain is the per-request time over one "
            "gold retrain timed in the same run. `NAME+twin` rows use hyper-parameters chosen on "
            "the twin problem; `NAME+stop` rows stop once their forget accuracy reaches the twin's "
            "estimate of gold's; TMU is always twin-tuned. A `*` class is 1, 3, 5, 7, 9, 0, 2, 4, "
            "6, 8 for seeds 0..9 (mod 10), so ten consecutive seeds cover every class once. Paired "
            "tables: TMU's figure minus the other model's, seed by seed, with a 95 % "
            "percentile-bootstrap interval of the mean (10,000 resamples), TMU's wins / ties / "
            "seeds and a two-sided sign test. Gap closed: 1 − \\|Δ_f\\| / the original's. "
            "Controls run TMU's step at one fixed strength (oversample 10) with other masks: "
            "random flips (as many as the rate rule), oracle flips (the gold ensemble's wrong "
            "set, TMU's flip label) and the label oracle (the same set flipped to gold's class); "
            "the oracles read gold: ceilings, never methods.",
            "",
            *sections,
        ]
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return text
