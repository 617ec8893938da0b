"""Command line: `python -m tmu run | methods | benchmark | download` (architecture.md gives the
contract).

Bad input exits with status 2 and one line `error: ...` naming the bad value, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from pathlib import Path

from tqdm import tqdm

from .artifacts import Store
from .config import ConfigError, RunConfig, from_dict
from .forget import FORGET_KINDS
from .unlearn import METHODS

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
        for p in parents:
            node = node.setdefault(p, {})
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


def config_from_args(args: argparse.Namespace) -> RunConfig:
    values = parse_overrides(args.set or [])
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    for key in ("twin_tune", "stop_at_target"):
        if getattr(args, key):
            values[key] = method_list(getattr(args, key), methods)
    values.update(
        dataset=args.dataset,
        forget=args.forget,
        seed=args.seed,
        methods=methods,
        gold_seeds=args.gold_seeds,
        model=args.model,
        device=args.device,
        data_root=args.data_root,
    )
    return from_dict(RunConfig, values)


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
    return "\n".join([head, *rows])


def progress_display(stages: list[str], quiet: bool):
    """A tqdm bar on a terminal, a line per stage in a log, nothing with --quiet; or None."""
    if quiet:
        return None
    return StageBar(stages) if sys.stderr.isatty() else StageLog(stages)


def cmd_run(args: argparse.Namespace) -> int:
    from .pipeline import plan_stages, validate
    from .runs import run_to_folder

    cfg = config_from_args(args)
    validate(cfg)
    out = Path(args.out) if args.out else default_out(cfg)
    shown = progress_display(plan_stages(cfg), args.quiet)
    try:
        report = run_to_folder(cfg, out, store=Store(args.store), progress=shown)
    finally:
        if shown is not None:
            shown.close()
    print(summary_table(report))
    print(f"run folder: {out}")
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    width = max(map(len, METHODS))
    for name, cls in sorted(METHODS.items()):
        print(f"{name:<{width}}  {cls.description}")
    return 0


def cmd_benchmark(args: argparse.Namespace) -> int:
    from .benchmark import run_benchmark

    methods = tuple(m for m in args.methods.split(",") if m)
    twin = method_list(args.twin_tune, methods)
    run_benchmark(
        datasets=args.dataset.split(","),
        settings=args.settings.split(","),
        seeds=args.seeds,
        first_seed=args.first_seed,
        controls=args.controls,
        methods=methods,
        out=Path(args.out),
        store=Store(args.store) if args.store else None,
        device=args.device,
        gold_seeds=args.gold_seeds,
        twin_tune=twin,
        stop_at_target=method_list(args.stop_at_target, methods),
        overrides=parse_overrides(args.set or []),
    )
    print(f"wrote {args.out}")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from .data import load_dataset

    pool = load_dataset(args.dataset, args.data_root, download=True)
    print(f"{args.dataset}: {len(pool)} images, {pool.num_classes} classes, ready")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tmu", description="Twin Machine Unlearning.")
    p.add_argument("-v", "--verbose", action="store_true", help="log every stage (INFO)")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the whole pipeline on one forget request")
    r.add_argument(
        "--dataset",
        default="mnist5k",
        help="mnist5k (default), digits, mnist, fashion-mnist, "
        "cifar10, cifar100 or imagefolder:PATH",
    )
    r.add_argument(
        "--forget",
        default="random:0.1",
        help=" | ".join(k.grammar for k in FORGET_KINDS.values()),
    )
    r.add_argument("--seed", type=int, default=0)
    r.add_argument(
        "--methods", default=",".join(RunConfig.methods), help=f"comma list of {sorted(METHODS)}"
    )
    r.add_argument(
        "--gold-seeds", type=int, default=3, help="gold (retrained) models, for the noise floor"
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
    r.add_argument("--model", default="cnn", help="cnn (default) or resnet18")
    r.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
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
    r.set_defaults(func=cmd_run)
    m = sub.add_parser("methods", help="list the unlearning methods")
    m.set_defaults(func=cmd_methods)
    b = sub.add_parser("benchmark", help="several seeds and settings, written as a markdown table")
    b.add_argument("--dataset", default="mnist5k", help="comma list of datasets")
    b.add_argument(
        "--settings",
        default="random:0.1,subclass:*:0.3",
        help="comma list of forget specs; a class * changes with the seed (1, 3, 5, ...)",
    )
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
    b.add_argument("--methods", default=",".join(RunConfig.methods))
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
    b.set_defaults(func=cmd_benchmark)
    d = sub.add_parser(
        "download", help="fetch a torchvision dataset's files (needs network access)"
    )
    d.add_argument("dataset", help="mnist, fashion-mnist, cifar10 or cifar100")
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
    try:
        return args.func(args)
    except (
        ValueError,
        OSError,
    ) as err:  # every bad input is a ValueError subclass naming the value
        print(f"error: {err}", file=sys.stderr)
        return 2
