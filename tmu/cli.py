"""Command line: `python -m tmu run | sweep | methods | benchmark | download | cluster`
(architecture.md gives the contract).

Bad input exits with status 2 and one line `error: ...` naming the bad value, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import time
from pathlib import Path

from tqdm import tqdm

from .artifacts import Store
from .config import ConfigError, RunConfig, from_dict
from .forget import FORGET_KINDS
from .models import MODELS, RECIPES, apply_recipe
from .scenarios import (
    DEFAULT_SCENARIO,
    SCENARIOS,
    get_scenario,
    merge,
    scenario_config,
    scenario_values,
)
from .threads import share_cores
from .unlearn import METHODS

DEFAULT_SETTINGS = "random:0.1,subclass:*:0.3"

logger = logging.getLogger("tmu")


def parse_overrides(pairs: list[str]) -> dict:
    """`--set train.epochs=3 --set twin.min_size=100` -> nested dict; values parsed as JSON when
    they are JSON, else kept as strings."""
    out: dict = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {pair!r} must look like SECTION.KEY=VALUE")
        node = out
        *parents, leaf = key.split(".")
        for depth, p in enumerate(parents):
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                section = ".".join(parents[: depth + 1])
                raise ConfigError(
                    f"--set {pair!r}: {section} was set to a value, so it has no key {leaf!r}"
                )
        try:
            node[leaf] = json.loads(value)
        except json.JSONDecodeError:
            node[leaf] = value
    return out


def method_list(text: str | None, methods: tuple[str, ...]) -> tuple[str, ...]:
    """`all` (every method of the run) or a comma list of method names."""
    if text == "all":
        return methods
    return tuple(m.strip() for m in (text or "").split(",") if m.strip())


RUN_OPTIONS = ("dataset", "forget", "methods", "gold_seeds", "model", "recipe", "device")
"""`run` options that default to the scenario's value, else RunConfig's (None: not given)."""


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The run's config: the scenario's values (if any), the options given explicitly and the
    `--set` values on top (what the user gives always wins), the model's recipe filling the
    rest of `train`."""
    given = {k: getattr(args, k) for k in RUN_OPTIONS if getattr(args, k) is not None}
    if "methods" in given:
        given["methods"] = [m.strip() for m in given["methods"].split(",") if m.strip()]
    values = merge(
        {**given, "seed": args.seed, "data_root": args.data_root}, parse_overrides(args.set or [])
    )
    if args.scenario:
        values = scenario_values(args.scenario, values)
    methods = tuple(values.get("methods", RunConfig.methods))
    for key in ("twin_tune", "stop_at_target"):
        if getattr(args, key):
            values[key] = method_list(getattr(args, key), methods)
    if args.original_weights:
        values["original_weights"] = str(Path(args.original_weights).resolve())
    return from_dict(RunConfig, apply_recipe(values))


def default_out(cfg: RunConfig) -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{cfg.dataset}-{cfg.forget}-s{cfg.seed}").strip("-")[
        :80
    ]
    return Path("runs") / "out" / slug


class StageLog:
    """Progress for a log file (stderr is not a terminal): one line per finished stage."""

    def __init__(self, stages: list[str]):
        self.stages, self.current, self.start, self.t0 = (
            stages,
            None,
            time.monotonic(),
            time.monotonic(),
        )

    def __call__(self, stage: str, frac: float) -> None:
        if stage != self.current:
            self._finish()
            self.current, self.start = stage, time.monotonic()

    def _finish(self) -> None:
        if self.current is not None:
            k = self.stages.index(self.current) + 1 if self.current in self.stages else "?"
            print(
                f"[{k}/{len(self.stages)}] {self.current}: {time.monotonic() - self.start:.1f} s",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        self._finish()
        self.current = None
        print(
            f"all {len(self.stages)} stages: {time.monotonic() - self.t0:.1f} s",
            file=sys.stderr,
            flush=True,
        )


class StageBar:
    """One tqdm bar on stderr over all stages; each stage reports its own fraction."""

    def __init__(self, stages: list[str]):
        self.stages, self.last = stages, 0.0
        self.bar = tqdm(
            total=len(stages),
            file=sys.stderr,
            bar_format="{desc:<14}{percentage:3.0f}%|{bar}| {elapsed}",
        )

    def __call__(self, stage: str, frac: float) -> None:
        now = time.monotonic()
        if now - self.last < 0.2 and 0.0 < frac < 1.0:
            return  # redraw at most five times a second
        self.last = now
        done = (
            self.stages.index(stage) + min(max(frac, 0.0), 1.0)
            if stage in self.stages
            else self.bar.n
        )
        self.bar.n = round(done, 3)
        self.bar.set_description_str(stage, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.n = len(self.stages)
        self.bar.close()


def summary_table(report: dict) -> str:
    """A short fixed-width table of the headline figures."""
    m, rows = report["models"], []
    # A mislabeled request also shows accuracy on D_f against the labels before corruption.
    relabeled = bool(report["dataset"].get("relabeled_forget"))
    head = (
        f"{'model':<18}{'acc_f':>7}{'true_f' if relabeled else '':>{7 * relabeled}}"
        f"{'acc_test':>9}{'|Δ_f|':>7}{'cls_Δ':>7}{'agree':>7}{'MIA_f':>7}{'sec':>8}{'ratio':>7}"
    )
    for name, e in [
        ("original", m["original"]),
        *[(f"gold_{i}", g) for i, g in enumerate(m["gold"])],
        *[(k, m[k]) for k in report["methods"]],
    ]:
        vs, nan = e.get("vs_gold", {}), float("nan")
        delta, agree = vs.get("delta_forget", nan), vs.get("agreement_forget", nan)
        per_class = vs.get("per_class_delta_forget", nan)
        true_f = f"{e['acc_true_forget']:>7.3f}" if relabeled else ""
        rows.append(
            f"{name:<18}{e['acc']['forget']:>7.3f}{true_f}{e['acc']['test']:>9.3f}"
            f"{delta:>7.3f}{per_class:>7.3f}{agree:>7.3f}"
            f"{e['mia']['forget_member_rate']:>7.3f}{e['seconds']:>8.1f}"
            f"{e.get('retrain_time_ratio', float('nan')):>7.2f}"
        )
    floor, nan = report.get("noise_floor") or {}, float("nan")
    rows.append(
        f"{'gold-vs-gold':<18}{'':>{16 + 7 * relabeled}}"
        + "".join(
            f"{floor.get(k, nan):>7.3f}"
            for k in ("delta_forget", "per_class_delta_forget", "agreement_forget")
        )
    )
    if "tmu" in m and "prep_seconds" in m["tmu"]:
        rows.append(
            f"tmu twin preparation: {m['tmu']['prep_seconds']:.1f} s "
            f"({m['tmu']['prep_retrain_time_ratio']:.2f} x one gold retrain)"
        )
    fit = report.get("twin", {}).get("fit")
    if fit:
        made = "retrained on D ∪ H_f" if fit["mode"] == "retrain" else "fine-tuned on H_f"
        rows.append(
            f"twin model ({made}) fits H_f at {fit['twin_forget']:.3f}; the original fits D at "
            f"{fit['original_train']:.3f} and D_f at {fit['original_forget']:.3f}"
        )
    for name in report["methods"]:
        if flips := m[name].get("flips"):
            rows.append(
                f"{name} flips {flips['flips']} sample(s): {flips['moved']} moved off their "
                f"label, {flips['landed']} to the flip label"
            )
    return "\n".join([head, *rows])


def progress_display(stages: list[str], quiet: bool):
    """A tqdm bar on a terminal, a line per stage in a log, nothing with --quiet; or None."""
    if quiet:
        return None
    return StageBar(stages) if sys.stderr.isatty() else StageLog(stages)


def make_queue(args: argparse.Namespace, store: Store, workers: int | None = None):
    """The job queue of `--backend`: this machine, or the Ray cluster at `--ray-address`."""
    from .sweep import local_queue, ray_queue

    if args.backend == "ray":
        if not args.ray_address:
            raise ValueError("--backend ray needs --ray-address HOST:PORT (or TMU_RAY_ADDRESS)")
        return ray_queue(store, args.ray_address, workers)
    return local_queue(store, workers or 1)


def follow(queue, job_id: str, shown) -> None:
    """Forward a queued job's progress to the display until it ends; Ctrl-C cancels it."""
    try:
        while (job := queue.status(job_id)).active:
            if shown is not None and job.stage:
                shown(job.stage, job.stage_fraction)
            time.sleep(0.1)
    except KeyboardInterrupt:
        queue.cancel(job_id)
        queue.wait(job_id, timeout=60)
        raise


def cmd_run(args: argparse.Namespace) -> int:
    from .pipeline import plan_stages, validate
    from .runs import run_to_folder

    cfg = config_from_args(args)
    validate(cfg, device_here=args.backend == "local")
    if args.download:
        from .data import load_dataset

        load_dataset(cfg.dataset, cfg.data_root, download=True)
    out = Path(args.out) if args.out else default_out(cfg)
    store = Store(args.store)
    shown = progress_display(plan_stages(cfg), args.quiet)
    try:
        if args.backend == "local":
            report = run_to_folder(cfg, out, store=store, progress=shown)
        else:
            report = run_queued(args, cfg, store, out, shown)
    finally:
        if shown is not None:
            shown.close()
    print(summary_table(report))
    print(f"run folder: {out}")
    return 0


def run_queued(args: argparse.Namespace, cfg: RunConfig, store: Store, out: Path, shown) -> dict:
    """One run as a job on the backend's queue; its folder copied to `out`; the report."""
    from .jobs import DONE
    from .sweep import copy_tree

    queue = make_queue(args, store)
    job_id = queue.submit(cfg)
    follow(queue, job_id, shown)
    job = queue.status(job_id)
    if job.state != DONE:
        raise JobFailed(f"the job {job.state}: {job.error}")
    if Path(job.out_dir).resolve() != out.resolve():
        copy_tree(Path(job.out_dir), out)
    return json.loads((out / "report.json").read_text())


class JobFailed(RuntimeError):
    """A job that ran and failed (exit status 1, not a bad input)."""


def cmd_sweep(args: argparse.Namespace) -> int:
    from .sweep import grid, parse_seeds, run_sweep

    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    base = {
        **parse_overrides(args.set or []),
        "methods": list(methods),
        "gold_seeds": args.gold_seeds,
        "model": args.model,
        "device": args.device,
        "data_root": args.data_root,
    }
    base = apply_recipe(base)
    cfgs = grid(
        [d for d in args.dataset.split(",") if d],
        [f for f in args.forget.split(",") if f],
        parse_seeds(args.seeds),
        base,
        device_here=args.backend == "local",
    )
    out = Path(args.out)
    queue = make_queue(args, Store(args.store), args.workers)
    start = time.monotonic()

    def on_change(done: int, failed: int, total: int) -> None:
        if not args.quiet:
            print(
                f"{done + failed}/{total} runs finished ({failed} failed), "
                f"{time.monotonic() - start:.0f} s",
                file=sys.stderr,
                flush=True,
            )

    result = run_sweep(queue, cfgs, out, on_change=on_change)
    for cfg, error in result.failed:
        print(f"failed: {cfg.dataset} {cfg.forget} seed {cfg.seed}: {error}", file=sys.stderr)
    print(
        f"wrote {result.csv} ({len(result.rows)} rows, {len(cfgs)} runs) in "
        f"{time.monotonic() - start:.0f} s"
    )
    return 1 if result.failed else 0


def cmd_prepare(args: argparse.Namespace) -> int:
    """Run a scenario's lesson runs into the store, as the dashboard's Tour will ask for them
    (same job keys), so that in class every first click is served from the store."""
    from .sweep import parse_seeds, run_jobs

    get_scenario(args.scenario)
    cfgs = [
        scenario_config(args.scenario, seed, quick=args.quick) for seed in parse_seeds(args.seeds)
    ]
    store = Store(args.store)
    queue = make_queue(args, store, args.workers)
    start = time.monotonic()
    failed = 0
    for cfg, res in zip(cfgs, run_jobs(queue, cfgs)):
        ok = not isinstance(res, str)
        failed += not ok
        print(
            f"{args.scenario} seed {cfg.seed}: " + ("ready" if ok else f"failed: {res}"),
            flush=True,
        )
    print(
        f"prepared {len(cfgs) - failed} of {len(cfgs)} run(s) of {args.scenario} in "
        f"{time.monotonic() - start:.0f} s; store: {store.root}"
    )
    return 1 if failed else 0


def cmd_scenarios(args: argparse.Namespace) -> int:
    """One line per scenario (what the gold model does there); the default one says so."""
    for name, sc in SCENARIOS.items():
        mark = " (default)" if name == DEFAULT_SCENARIO else ""
        print(
            f"{name}{mark}: {sc.dataset}, {sc.forget}, {sc.values.get('recipe', 'standard')} "
            f"recipe. {sc.summary}"
        )
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from .importer import ImportLimits, import_dataset, limit_memory

    if args.memory_mb:
        limit_memory(args.memory_mb)
    limits = ImportLimits(
        **{k: v for k, v in vars(args).items() if k.startswith("max_") and v is not None}
    )
    done = import_dataset(args.archive, args.name, args.data_root, limits)
    print(
        f"imported {done.name}: {len(done.pool)} images, {done.pool.num_classes} classes "
        f"({', '.join(done.pool.classes[:8])}{', ...' if done.pool.num_classes > 8 else ''})"
        f"{f'; skipped {done.skipped} non-image or hidden files' if done.skipped else ''}\n"
        f"folder: {done.path}\nuse it with: --dataset {done.dataset}"
        + (f" --data-root {args.data_root}" if args.data_root else "")
    )
    return 0


def cmd_cluster(args: argparse.Namespace) -> int:
    from .ray_backend import RayRunner, shutdown_workers

    if not args.ray_address:
        raise ValueError("cluster needs --ray-address HOST:PORT (or TMU_RAY_ADDRESS)")
    if args.stop_workers:
        print(f"stopped {shutdown_workers(args.ray_address)} tmu worker(s)")
        return 0
    print(json.dumps(RayRunner(args.ray_address).describe(), indent=2))
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    from .unlearn import FAILED, ORIGINS

    width = max(map(len, [*METHODS, *FAILED]))
    for name, cls in sorted(METHODS.items()):
        origin = ORIGINS[name]
        where = "" if origin.kind == "built-in" else f"  [plug-in: {origin.label()}]"
        print(f"{name:<{width}}  {cls.description}{where}")
    for name, reason in sorted(FAILED.items()):  # skipped plug-ins (docs/plugins.md)
        print(f"{name:<{width}}  FAILED: {reason}")
    return 0


def cmd_benchmark(args: argparse.Namespace) -> int:
    from .benchmark import run_benchmark

    methods = tuple(m for m in args.methods.split(",") if m) if args.methods else None
    scenarios = [n for n in (args.scenarios or "").split(",") if n]
    for name in scenarios:
        get_scenario(name)  # an unknown name fails before any run
    listed = methods or tuple(
        dict.fromkeys(m for n in scenarios for m in get_scenario(n).values["methods"])
    )
    twin = method_list(args.twin_tune, listed or RunConfig.methods)
    settings = (
        args.settings if args.settings is not None else ("" if scenarios else DEFAULT_SETTINGS)
    )
    datasets = args.dataset if args.dataset is not None else ("" if scenarios else "mnist5k")
    run_benchmark(
        datasets=[d for d in datasets.split(",") if d],
        settings=[s for s in settings.split(",") if s],
        scenarios=scenarios,
        reports_out=Path(args.reports) if args.reports else None,
        seeds=args.seeds,
        first_seed=args.first_seed,
        controls=args.controls,
        methods=methods,
        out=Path(args.out),
        store=Store(args.store) if args.store else None,
        device=args.device,
        gold_seeds=args.gold_seeds,
        twin_tune=twin,
        stop_at_target=method_list(args.stop_at_target, listed or RunConfig.methods),
        overrides=parse_overrides(args.set or []),
        queue=lambda store: make_queue(args, store, args.workers),
    )
    print(f"wrote {args.out}")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from .data import load_dataset

    pool = load_dataset(args.dataset, args.data_root, download=True)
    print(f"{args.dataset}: {len(pool)} images, {pool.num_classes} classes, ready")
    return 0


def add_backend_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--backend",
        choices=("local", "ray"),
        default=os.environ.get("TMU_BACKEND", "local"),
        help="where jobs run: this machine (default) or a Ray cluster",
    )
    p.add_argument(
        "--ray-address",
        default=os.environ.get("TMU_RAY_ADDRESS"),
        metavar="HOST:PORT",
        help="the Ray cluster's head (ray start --head --port PORT); default $TMU_RAY_ADDRESS",
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tmu", description="Twin Machine Unlearning.")
    p.add_argument("-v", "--verbose", action="store_true", help="log every stage (INFO)")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the whole pipeline on one forget request")
    r.add_argument(
        "--scenario",
        help=f"start from a named scenario ({', '.join(SCENARIOS)}; `python -m tmu scenarios`): "
        "its dataset, recipe, label noise, forget set and methods; every option and --set "
        "given here wins over it",
    )
    r.add_argument(
        "--dataset",
        help="mnist5k (default), digits, mnist, fashion-mnist, "
        "cifar10, cifar100, cifar100-coarse (20 super-classes) or imagefolder:PATH",
    )
    r.add_argument(
        "--forget",
        help=" | ".join(k.grammar for k in FORGET_KINDS.values()) + " (default random:0.1)",
    )
    r.add_argument("--seed", type=int, default=0)
    r.add_argument(
        "--methods",
        help=f"comma list of {sorted(METHODS)} (default {','.join(RunConfig.methods)})",
    )
    r.add_argument(
        "--gold-seeds", type=int, help="gold (retrained) models, for the noise floor (default 3)"
    )
    r.add_argument(
        "--recipe",
        help=f"{' | '.join(RECIPES)}: the model's training recipe as it is (standard, the "
        "default), or its memorising variant (no weight decay, 4x the epochs: the original "
        "fits every training label, wrong ones included)",
    )
    r.add_argument(
        "--twin-tune",
        metavar="all|M1,M2",
        help="also run these methods with hyper-parameters "
        "chosen on the twin problem (reported as NAME+twin); TMU is always twin-tuned",
    )
    r.add_argument(
        "--stop-at-target",
        metavar="all|M1,M2",
        help="also run these methods stopped once their forget-set accuracy reaches the twin's "
        "estimate of gold's (reported as NAME+stop)",
    )
    r.add_argument(
        "--model",
        help=f"{', '.join(MODELS)} (default cnn); a model's training recipe fills every "
        "train.* key you do not --set",
    )
    r.add_argument("--device", help="auto (default) | cpu | cuda | cuda:N")
    r.add_argument(
        "--original-weights",
        metavar="FILE.pt",
        help="unlearn a model trained elsewhere: its state_dict (for --model on --dataset) is the "
        "original instead of one trained here; golds are still retrained here",
    )
    r.add_argument("--out", help="run folder (default runs/out/DATASET-FORGET-sSEED)")
    r.add_argument(
        "--data-root", help="folder of torchvision datasets (default $TMU_DATA or ./data)"
    )
    r.add_argument("--store", help="run store root (default $TMU_HOME or ./runs)")
    r.add_argument(
        "--set",
        action="append",
        metavar="SECTION.KEY=VALUE",
        help="override a config value, e.g. train.epochs=5 or method_params.tmu.sigma=0.2",
    )
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    r.add_argument(
        "--download",
        action="store_true",
        help="fetch a missing torchvision dataset into the data root first (needs the internet)",
    )
    add_backend_args(r)
    r.set_defaults(func=cmd_run)
    w = sub.add_parser("sweep", help="a grid of runs as parallel jobs, one CSV row per model")
    w.add_argument("--dataset", default="mnist5k", help="comma list of datasets")
    w.add_argument("--forget", default="random:0.1", help="comma list of forget specs")
    w.add_argument("--seeds", default="0", help="comma list and ranges, e.g. 0,1,2 or 100-109")
    w.add_argument("--methods", default=",".join(RunConfig.methods))
    w.add_argument("--gold-seeds", type=int, default=3)
    w.add_argument("--model", default="cnn")
    w.add_argument("--device", default="auto")
    w.add_argument("--data-root")
    w.add_argument("--store", help="run store root (default $TMU_HOME or ./runs)")
    w.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE")
    w.add_argument(
        "--workers",
        type=int,
        help="jobs at once (local: worker processes, default 1; ray: default one per GPU)",
    )
    w.add_argument("--out", required=True, help="folder for sweep.csv and runs/")
    w.add_argument("-q", "--quiet", action="store_true")
    add_backend_args(w)
    w.set_defaults(func=cmd_sweep)
    i = sub.add_parser("import-dataset", help="a zip of class folders -> imagefolder:NAME")
    i.add_argument("archive", help="FILE.zip holding CLASS/IMAGE files")
    i.add_argument("--name", required=True, help="the dataset's name (letters, digits, _ . -)")
    i.add_argument(
        "--data-root",
        help="folder of datasets (default $TMU_DATA or ./data); NAME goes to "
        "DATA_ROOT/imported/NAME",
    )
    for flag, what in (
        ("--max-files", "image files"),
        ("--max-bytes", "bytes of images, expanded"),
        ("--max-ratio", "expansion ratio of one member (zip bombs)"),
        ("--max-classes", "classes"),
        ("--max-pixels", "pixels per image"),
        ("--max-pool-bytes", "bytes of all images once decoded (float32)"),
    ):
        i.add_argument(
            flag, type=float if "ratio" in flag else int, help=f"at most this many {what}"
        )
    i.add_argument(
        "--memory-mb",
        type=int,
        help="fail (with a message) rather than use more than this many MB of memory beyond the "
        "interpreter's own",
    )
    i.set_defaults(func=cmd_import)
    c = sub.add_parser("cluster", help="the Ray cluster's GPUs and tmu workers")
    c.add_argument("--ray-address", default=os.environ.get("TMU_RAY_ADDRESS"))
    c.add_argument("--stop-workers", action="store_true", help="kill every tmu worker")
    c.set_defaults(func=cmd_cluster)
    m = sub.add_parser("methods", help="list the unlearning methods")
    m.set_defaults(func=cmd_methods)
    sc = sub.add_parser("scenarios", help="list the scenarios (run --scenario NAME)")
    sc.set_defaults(func=cmd_scenarios)
    pr = sub.add_parser(
        "prepare", help="store a scenario's runs before a lesson, as the dashboard's Tour asks"
    )
    pr.add_argument("--scenario", required=True, help=", ".join(SCENARIOS))
    pr.add_argument("--seeds", default="0", help="comma list and ranges, e.g. 0-4 (default 0)")
    pr.add_argument("--quick", action="store_true", help="the dashboard's quick profile")
    pr.add_argument("--store", help="run store root: the dashboard's (default $TMU_HOME or ./runs)")
    pr.add_argument("--workers", type=int, help="runs at once (local worker processes)")
    add_backend_args(pr)
    pr.set_defaults(func=cmd_prepare)
    b = sub.add_parser("benchmark", help="several seeds and settings, written as a markdown table")
    b.add_argument("--dataset", help="comma list of datasets (default mnist5k)")
    b.add_argument(
        "--settings",
        help="comma list of forget specs; a class * changes with the seed (1, 3, 5, ...) "
        f"(default {DEFAULT_SETTINGS}, none with --scenarios)",
    )
    b.add_argument(
        "--scenarios",
        help=f"comma list of scenarios ({', '.join(SCENARIOS)}), each with its own dataset, "
        "recipe, label noise, forget set and methods",
    )
    b.add_argument("--reports", metavar="FILE.json", help="also write every run's report here")
    b.add_argument("--seeds", type=int, default=5, help="how many seeds per setting")
    b.add_argument(
        "--first-seed",
        type=int,
        default=0,
        help="the first seed (develop on 0-9, report on 100 and above)",
    )
    b.add_argument(
        "--controls",
        action="store_true",
        help="add TMU with random flips and with gold's own flips (an oracle ceiling)",
    )
    b.add_argument(
        "--methods",
        help=f"comma list (default: a scenario's own, else {','.join(RunConfig.methods)})",
    )
    b.add_argument("--twin-tune", metavar="all|M1,M2", help="also report these methods twin-tuned")
    b.add_argument(
        "--stop-at-target",
        metavar="all|M1,M2",
        help="also report these methods stopped at the twin's estimate of gold's forget accuracy",
    )
    b.add_argument("--gold-seeds", type=int, default=3)
    b.add_argument("--device", default="auto")
    b.add_argument("--store", help="run store to share (default: a fresh one for this benchmark)")
    b.add_argument(
        "--set", action="append", metavar="SECTION.KEY=VALUE", help="config override for every run"
    )
    b.add_argument(
        "--out",
        default="docs/benchmarks-methods.md",
        help="markdown file to write, figures beside it (default docs/benchmarks-methods.md)",
    )
    b.add_argument(
        "--workers",
        type=int,
        help="runs at once (local: worker processes, default 1; ray: default one per GPU)",
    )
    add_backend_args(b)
    b.set_defaults(func=cmd_benchmark)
    d = sub.add_parser(
        "download", help="fetch a torchvision dataset's files (needs network access)"
    )
    d.add_argument("dataset", help="mnist, fashion-mnist, cifar10, cifar100 or cifar100-coarse")
    d.add_argument(
        "--data-root", help="folder of torchvision datasets (default $TMU_DATA or ./data)"
    )
    d.set_defaults(func=cmd_download)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.command in ("run", "sweep", "benchmark", "prepare"):
        share_cores()  # with every other tmu process on this machine (tmu.threads)
    try:
        return args.func(args)
    except JobFailed as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except RuntimeError as err:
        from .jobs import error_text, out_of_memory

        if not out_of_memory(err):
            raise  # a bug: its traceback helps more than one line
        print(f"error: {error_text(err)}", file=sys.stderr)
        return 1
    except (
        ValueError,
        OSError,
    ) as err:  # every bad input is a ValueError subclass naming the value
        print(f"error: {err}", file=sys.stderr)
        return 2
