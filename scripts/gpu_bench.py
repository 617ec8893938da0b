"""GPU benchmark of the fast path (bf16 autocast, channels-last, the uint8 pool on the device,
augmentation on the device); under five minutes on one CUDA GPU.

    python scripts/gpu_bench.py [--quick] [--json PATH] [--deadline S] [--parts a,b]

On a lent GPU, run it through `bash scripts/gpu_run.sh` (docs/gpu.md): carried wheels, an import
check, and everything in $OUT.

Measures:
1. training throughput (images/s) of every registry model through `tmu.training.fit`, on
   CIFAR-shaped random data (3x32x32, 10 classes, 50,000 images, batch 512), after a warm-up,
   timed between `torch.cuda.synchronize` calls;
2. one gold retrain: resnet9 with its recipe on 45,000 images of a synthetic CIFAR-like set;
3. the whole pipeline (`tmu.runs.run_to_folder`) on mnist5k (cnn) and on a 50,000-image
   synthetic CIFAR-like set (resnet9 and its recipe), 3 gold seeds each, with per-stage seconds;
4. the peak GPU memory of each (`torch.cuda.max_memory_allocated`).
Each part is guarded (an error is recorded, the next part runs); `--json PATH` is rewritten after
every part; parts not started `--deadline` seconds in are skipped; the markdown tables with the
device name are printed at the end whatever happened. `--quick` is a smaller run. Without a CUDA
GPU it exits with code 2 and one line; `--cpu-smoke` runs the
script's own logic at toy sizes on the CPU instead (for testing the script; its numbers mean
nothing). No downloads: the synthetic set is registered in `tmu.data.DATASETS` at run time.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# tmu is imported where it is used: importing the pipeline takes seconds, and the refusal on a
# machine without a GPU should come at once.

SYNTHETIC = "synthetic-cifar"


@dataclass(frozen=True)
class Sizes:
    """How big each measurement is."""

    images: int  # throughput set and synthetic pipeline set
    batch: int  # throughput batch, every model (512: resnet9's recipe)
    gold_epochs: int | None  # None: the resnet9 recipe's
    train: dict  # pipeline train overrides on top of each model's recipe
    gold_seeds: int
    methods: tuple[str, ...] | None  # None: the RunConfig default
    overrides: dict = dataclasses.field(default_factory=dict)  # more RunConfig values


FULL = Sizes(50_000, 512, None, {}, 3, None)
QUICK = Sizes(10_000, 512, 2, {"epochs": 2}, 1, None)
CPU_SMOKE = Sizes(
    128,
    16,
    1,
    # the GPU-only branches, forced on the CPU: bf16 autocast, channels-last
    {"epochs": 1, "batch_size": 64, "amp": "bf16", "channels_last": "on"},
    1,
    ("tmu", "finetune"),
    {
        "twin": {"min_size": 40, "max_epochs": 1},
        "predictor": {"epochs": 10, "folds": 2},
        "features": {"features": ["DF", "CF"]},
        "split": {"holdout": 0.1, "test": 0.1},
    },
)


def say(text: str) -> None:
    """Progress on stderr (the tables go to stdout at the end)."""
    print(f"[gpu_bench] {text}", file=sys.stderr, flush=True)


def synthetic_cifar(n: int, num_classes: int = 10, seed: int = 0, size: int = 32):
    """A `tmu.data.Pool` of n CIFAR-shaped images (3 x size x size, float32 values k/255, as an
    8-bit dataset) with learnable class structure and some ambiguous samples.

    Each class has a smooth random colour pattern (a 4x4 RGB grid upsampled bilinearly). An image
    shows its class's pattern mixed with another class's (mixing weight uniform in [0, 0.6], so
    the images mixed past one half look more like the other class: hard samples), at a random
    contrast, shifted by up to 4 pixels (zero border), plus Gaussian pixel noise (sd 0.15).
    Labels are balanced and shuffled."""
    from tmu.accel import LEVELS, crop_flip
    from tmu.data import Pool

    g = torch.Generator().manual_seed(seed)
    grid = torch.rand(num_classes, 3, 4, 4, generator=g)
    protos = F.interpolate(grid, size=(size, size), mode="bilinear", align_corners=False)
    y = torch.randperm(n, generator=g) % num_classes
    other = (y + torch.randint(1, num_classes, (n,), generator=g)) % num_classes
    mix = 0.6 * torch.rand(n, 1, 1, 1, generator=g)
    contrast = 0.6 + 0.4 * torch.rand(n, 1, 1, 1, generator=g)
    shift = torch.randint(0, 9, (2, n), generator=g)
    images = (1 - mix) * protos[y] + mix * protos[other]
    images = crop_flip(images, shift[0], shift[1], torch.zeros(n, dtype=torch.bool))
    images = contrast * images + 0.15 * torch.randn(images.shape, generator=g)
    codes = images.mul(255).round().clamp(0, 255).long()
    x = LEVELS[codes].contiguous()  # exactly k/255, as the 8-bit loaders scale
    classes = [f"pattern{k}" for k in range(num_classes)]
    return Pool(SYNTHETIC, x, y.long(), tuple(classes))


def random_cifar(n: int, num_classes: int = 10, seed: int = 0):
    """A Pool of n uniformly random 8-bit 3x32x32 images with random labels (for throughput)."""
    from tmu.accel import LEVELS
    from tmu.data import Pool

    g = torch.Generator().manual_seed(seed)
    x = LEVELS[torch.randint(0, 256, (n, 3, 32, 32), generator=g)]
    y = torch.randint(0, num_classes, (n,), generator=g)
    return Pool("random-cifar", x, y, tuple(str(k) for k in range(num_classes)))


def stage_seconds(marks: list[tuple[str, float]], end: float) -> dict[str, float]:
    """Seconds per stage from (stage, time of its first progress report) in order: each stage
    lasts until the next one starts, the last one until `end`."""
    out = {}
    for (stage, start), nxt in zip(marks, [t for _, t in marks[1:]] + [end]):
        out[stage] = round(nxt - start, 3)
    return out


class Clock:
    """Wall-clock timing that waits for the GPU at both ends, with the peak memory between."""

    def __init__(self, device):
        self.cuda = device.type == "cuda"

    def __enter__(self) -> Clock:
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        if self.cuda:
            torch.cuda.synchronize()
        self.seconds = time.perf_counter() - self.start
        self.peak_gib = torch.cuda.max_memory_allocated() / 2**30 if self.cuda else None


def throughput(name: str, x, y, batch: int, device) -> dict:
    """Training images/s of registry model `name` through `fit`, one epoch over the pool rows
    after a warm-up that meets every batch shape of the timed epoch (cudnn autotuning)."""
    from tmu.config import TrainConfig
    from tmu.models import build_model
    from tmu.training import Part, fit

    n = len(y)
    cfg = TrainConfig(epochs=1, lr=0.01, batch_size=batch, schedule="constant")
    model = build_model(name, x.shape[1], int(y.max()) + 1, seed=0)
    warm = np.arange(min(n, 3 * batch + n % batch))
    fit(model, x, [Part(warm, y[warm])], cfg, device=device, seed=0)
    ids = np.arange(n)
    with Clock(device) as clock:
        fit(model, x, [Part(ids, y[ids])], cfg, device=device, seed=1)
    return {
        "model": name,
        "batch": batch,
        "images": n,
        "seconds": round(clock.seconds, 3),
        "images_per_s": round(n / clock.seconds, 1),
        "peak_gib": clock.peak_gib,
    }


def gold_retrain(x, y, device, epochs: int | None) -> dict:
    """One resnet9 trained from scratch with its recipe on 90 % of the pool (a gold retrain)."""
    from tmu.config import TrainConfig, from_dict
    from tmu.models import MODELS, build_model
    from tmu.training import train_from_scratch

    cfg = from_dict(TrainConfig, MODELS["resnet9"].recipe)
    cfg = dataclasses.replace(cfg, epochs=epochs) if epochs else cfg
    ids = np.arange(int(0.9 * len(y)))
    k = int(y.max()) + 1

    def build():
        return build_model("resnet9", x.shape[1], k)

    with Clock(device) as clock:
        train_from_scratch(build, x, y, ids, cfg, device=device, seed=0)
    return {
        "model": "resnet9",
        "images": len(ids),
        "epochs": cfg.epochs,
        "seconds": round(clock.seconds, 3),
        "images_per_s": round(cfg.epochs * len(ids) / clock.seconds, 1),
        "peak_gib": clock.peak_gib,
    }


def pipeline(dataset: str, model: str, sizes: Sizes, device, tmp: Path) -> dict:
    """The whole pipeline (`run_to_folder`, nothing cached) of `dataset` with `model` and its
    recipe: wall seconds, seconds per stage, peak memory and headline figures of the report."""
    from tmu.artifacts import Store
    from tmu.config import RunConfig, from_dict
    from tmu.models import apply_recipe
    from tmu.runs import run_to_folder

    values = {"dataset": dataset, "model": model, "gold_seeds": sizes.gold_seeds}
    values.update(sizes.overrides)
    values["device"] = device.type
    values.update({"methods": list(sizes.methods)} if sizes.methods else {})
    values.update({"train": dict(sizes.train)} if sizes.train else {})
    cfg = from_dict(RunConfig, apply_recipe(values))
    marks: list[tuple[str, float]] = []

    def progress(stage: str, frac: float) -> None:
        if not marks or marks[-1][0] != stage:
            marks.append((stage, time.perf_counter()))

    folder = tmp / f"{dataset}-{model}"
    with Clock(device) as clock:
        report = run_to_folder(
            cfg, folder / "run", store=Store(folder / "store"), progress=progress
        )
    models = report["models"]
    methods = {k: v for k, v in models.items() if k not in ("original", "gold")}
    return {
        "dataset": dataset,
        "model": model,
        "epochs": cfg.train.epochs,
        "batch_size": cfg.train.batch_size,
        "gold_seeds": cfg.gold_seeds,
        "seconds": round(clock.seconds, 3),
        "gold_seconds": round(report["gold_seconds"], 3),
        "stages": stage_seconds(marks, clock.start + clock.seconds),
        "peak_gib": clock.peak_gib,
        "original_test_acc": models["original"]["acc"]["test"],
        "agreement_forget": {
            k: v.get("vs_gold", {}).get("agreement_forget") for k, v in methods.items()
        },
    }


def markdown(result: dict) -> str:
    """What the result holds as markdown tables; a part that failed or was skipped says so."""

    def gib(v):
        return "-" if v is None else f"{v:.2f}"

    lines = [f"device: {result['device']} (torch {result['torch']}, mode {result['mode']})", ""]
    if result.get("throughput"):
        lines += ["| training throughput | batch | images/s | peak GiB |", "|---|---:|---:|---:|"]
        for t in result["throughput"]:
            lines.append(
                f"| {t['model']} | {t['batch']} | {t['images_per_s']:,.0f} | {gib(t['peak_gib'])} |"
            )
    if result.get("gold_retrain"):
        g = result["gold_retrain"]
        lines += ["", "| gold retrain | images x epochs | seconds | images/s | peak GiB |"]
        lines += ["|---|---:|---:|---:|---:|"]
        lines.append(
            f"| {g['model']} | {g['images']:,} x {g['epochs']} | {g['seconds']:.1f} | "
            f"{g['images_per_s']:,.0f} | {gib(g['peak_gib'])} |"
        )
    pipelines = [result[k] for k in PIPELINES if result.get(k)]
    if pipelines:
        lines += ["", "| pipeline | model | epochs | gold seeds | seconds | gold s | peak GiB | "]
        lines[-1] += "original test acc |"
        lines += ["|---|---|---:|---:|---:|---:|---:|---:|"]
        for p in pipelines:
            lines.append(
                f"| {p['dataset']} | {p['model']} | {p['epochs']} | {p['gold_seeds']} | "
                f"{p['seconds']:.1f} | {p['gold_seconds']:.1f} | {gib(p['peak_gib'])} | "
                f"{p['original_test_acc']:.3f} |"
            )
        for p in pipelines:
            stages = ", ".join(f"{k} {v:.1f}" for k, v in p["stages"].items())
            lines += ["", f"{p['dataset']} stages (s): {stages}"]
    for part, error in result.get("errors", {}).items():
        lines += ["", f"**{part} failed**: {error}"]
    if result.get("skipped"):
        lines += ["", f"skipped (past the deadline): {', '.join(result['skipped'])}"]
    return "\n".join(lines)


PIPELINES = {"pipeline_mnist5k": ("mnist5k", "cnn"), "pipeline_synthetic": (SYNTHETIC, "resnet9")}


def parts(sizes: Sizes, device, tmp: Path) -> list[tuple[str, Callable[[], object]]]:
    """The measurements in order, each a (name, thunk); each guarded on its own by `run`."""
    from tmu.data import DATASETS
    from tmu.models import MODELS

    def pool(p):
        return encode_pool(p.x) if FORCE_UINT8[0] else pool_inputs(p, device)

    def every_throughput():
        random = random_cifar(sizes.images)
        x, y, out = pool(random), random.y.numpy(), []
        for name in MODELS:
            out.append(throughput(name, x, y, sizes.batch, device))
            say(f"throughput {name}: {out[-1]['images_per_s']:,.0f} images/s")
        return out

    def retrain():
        synthetic = synthetic_cifar(sizes.images)
        return gold_retrain(pool(synthetic), synthetic.y.numpy(), device, sizes.gold_epochs)

    def whole(dataset: str, model: str):
        import tmu.pipeline.stages as stages

        DATASETS[SYNTHETIC] = lambda root, download: synthetic_cifar(sizes.images)
        if FORCE_UINT8[0]:  # the CPU smoke: the pipeline's pool as uint8 codes, as on a GPU
            stages.pool_inputs = lambda p, device: encode_pool(p.x)
        return pipeline(dataset, model, sizes, device, tmp)

    return [("throughput", every_throughput), ("gold_retrain", retrain)] + [
        (name, lambda d=d, m=m: whole(d, m)) for name, (d, m) in PIPELINES.items()
    ]


FORCE_UINT8 = [False]  # the CPU smoke keeps the pool as uint8 codes, as on a GPU


def pool_inputs(p, device):
    from tmu.pipeline import pool_inputs as inputs

    return inputs(p, device)


def encode_pool(x):
    from tmu.accel import encode_pool as encode

    return encode(x)


def run(
    sizes: Sizes,
    mode: str,
    device,
    deadline: float,
    json_path: Path | None,
    only: tuple[str, ...] | None = None,
) -> dict:
    """Every measurement at `sizes` on `device`, each part guarded (an error is recorded and the
    next part runs), the JSON rewritten after every part, parts past `deadline` seconds skipped;
    `only` names the parts to run (default: all)."""
    from tmu.models import device_label

    start = time.perf_counter()
    result = {"device": device_label(device), "torch": torch.__version__, "mode": mode}
    result |= {"sizes": asdict(sizes), "deadline_s": deadline, "errors": {}, "skipped": []}
    with tempfile.TemporaryDirectory(prefix="gpu_bench_") as tmp:
        for name, part in parts(sizes, device, Path(tmp)):
            if only is not None and name not in only:
                continue
            if time.perf_counter() - start > deadline:
                result["skipped"].append(name)
            else:
                try:
                    result[name] = part()
                    say(f"{name}: done ({time.perf_counter() - start:.0f} s in)")
                except Exception as err:  # the next part may still work: record, and go on
                    result["errors"][name] = f"{type(err).__name__}: {err}"
                    say(f"{name} failed: {result['errors'][name]}")
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            result["total_seconds"] = round(time.perf_counter() - start, 1)
            write(json_path, result)
    return result


def write(path: Path | None, result: dict) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a smaller smoke run")
    p.add_argument(
        "--json", type=Path, help="write every figure to this JSON file (after each part)"
    )
    p.add_argument(
        "--deadline",
        type=float,
        default=float("inf"),
        help="seconds after which the parts not yet started are skipped (a lent GPU is short)",
    )
    p.add_argument(
        "--parts",
        help=f"comma list of the parts to run (default all: throughput, gold_retrain, "
        f"{', '.join(PIPELINES)})",
    )
    p.add_argument(
        "--cpu-smoke",
        action="store_true",
        help="run the logic on the CPU at toy sizes, forcing the GPU-only branches (uint8 pool, "
        "bf16 autocast, channels-last); tests the script, its numbers mean nothing",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.cpu_smoke:
        sizes, mode, device = CPU_SMOKE, "cpu-smoke", torch.device("cpu")
        FORCE_UINT8[0] = True
    elif not torch.cuda.is_available():
        print(
            "gpu_bench: no CUDA GPU is available on this machine; this benchmark needs one "
            "(--cpu-smoke tests the script on the CPU)",
            file=sys.stderr,
        )
        return 2
    else:
        sizes, mode = (QUICK, "quick") if args.quick else (FULL, "full")
        device = torch.device("cuda")
    logging.basicConfig(level=logging.WARNING)
    result: dict = {"device": str(device), "torch": torch.__version__, "mode": mode}
    try:
        only = tuple(args.parts.split(",")) if args.parts else None
        result = run(sizes, mode, device, args.deadline, args.json, only)
    finally:  # whatever happened, what was measured is printed
        print(markdown(result))
        print(f"\ntotal: {result.get('total_seconds', 0):.0f} s")
    return 1 if result.get("errors") else 0


if __name__ == "__main__":
    sys.exit(main())
