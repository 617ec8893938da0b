"""Wires the stages: data -> splits -> original and gold models -> twin problem -> features ->
predictor -> unlearning (TMU and baselines) -> evaluation -> report and run folder.

Costly artifacts (original, golds, twin and curriculum models, twin features, twin-tuning, every
unlearned model) are cached in the run store by a hash of what produced them, so an identical
second run retrains nothing, and says so in the log and in each model's `cached` field.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from .artifacts import Store, config_key
from .config import RunConfig, to_dict
from .data import Pool, load_dataset
from .features import FeatureContext, compute_features
from .models import build_model, resolve_device
from .splits import Splits, make_splits, split_pool
from .training import Progress, embed, predict, train_from_scratch
from .twin import FittedPredictor, fit_predictor, select_twin_forget, train_curriculum, train_twin_model
from .tuning import twin_tune
from .unlearn import METHODS, Env, Problem, get_method

logger = logging.getLogger(__name__)

StageProgress = Callable[[str, float], None]
"""Called with (stage name, fraction of that stage done)."""

GPU_RESIDENT_BYTES = 2 << 30  # pools smaller than this live on the training device


def pool_inputs(pool: Pool, device: torch.device) -> torch.Tensor:
    """The pool's inputs on `device` when they fit under GPU_RESIDENT_BYTES, else on the CPU
    (the training loop then moves one batch at a time)."""
    small = pool.x.element_size() * pool.x.nelement() < GPU_RESIDENT_BYTES
    return pool.x.to(device) if small else pool.x


TUNED_SUFFIX = "+twin"


@dataclass(frozen=True)
class Entry:
    """One unlearned model of a run: its report name, its method, and whether its
    hyper-parameters are chosen on the twin problem (else the method's documented defaults)."""
    name: str
    method: str
    tuned: bool


def method_entries(cfg: RunConfig) -> list[Entry]:
    """Every method with its default hyper-parameters (TMU: always twin-tuned, as the method
    prescribes), then a twin-tuned variant `NAME+twin` of each method listed in cfg.twin_tune."""
    entries = [Entry(m, m, METHODS[m].tuned_by_default) for m in cfg.methods]
    return entries + [Entry(m + TUNED_SUFFIX, m, True) for m in cfg.methods
                      if m in cfg.twin_tune and not METHODS[m].tuned_by_default and METHODS[m].grid]


def plan_stages(cfg: RunConfig) -> list[str]:
    """The stage names a run reports progress for, in order."""
    golds = [f"gold {k + 1}/{cfg.gold_seeds}" for k in range(cfg.gold_seeds)]
    twin = ["twin"] if needs_twin(cfg) else []
    return ["original", *golds, *twin, *(e.name for e in method_entries(cfg)), "evaluate"]


def needs_twin(cfg: RunConfig) -> bool:
    return any(METHODS[e.method].needs_predictor or e.tuned for e in method_entries(cfg))


def gold_seed(seed: int, k: int) -> int:
    """The seed of the k-th gold model: distinct from the original's and from each other."""
    return 1_000 * (seed + 1) + k


def validate(cfg: RunConfig) -> None:
    """Reject unknown methods / models and impossible counts before anything is trained."""
    unknown = [m for m in cfg.methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; valid methods: {sorted(METHODS)}")
    if not cfg.methods:
        raise ValueError("no method to run; pass at least one with --methods")
    unknown = [m for m in cfg.twin_tune if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown} in twin_tune; valid methods: {sorted(METHODS)}")
    if cfg.gold_seeds < 1:
        raise ValueError(f"gold_seeds={cfg.gold_seeds} must be at least 1")
    if cfg.twin.max_epochs < 1 or cfg.train.epochs < 1:
        raise ValueError(f"train.epochs={cfg.train.epochs} and twin.max_epochs={cfg.twin.max_epochs} "
                         "must be at least 1")
    for name, params in cfg.method_params.items():
        get_method(name, **params)  # raises on unknown names and hyper-parameters


@dataclass
class Run:
    """The state of one run while it executes (the stages fill it in)."""
    cfg: RunConfig
    pool: Pool
    splits: Splits
    device: torch.device
    store: Store
    progress: StageProgress
    x: torch.Tensor = field(init=False)
    labels: np.ndarray = field(init=False)
    models: dict[str, nn.Module] = field(default_factory=dict)
    meta: dict[str, dict] = field(default_factory=dict)
    extras: dict[str, object] = field(default_factory=dict)

    def __post_init__(self):
        self.x = pool_inputs(self.pool, self.device)
        self.labels = self.pool.y.numpy()

    def build(self, seed: int | None = None) -> nn.Module:
        return build_model(self.cfg.model, self.pool.in_channels, self.pool.num_classes, seed)

    def stage(self, name: str) -> Progress:
        return lambda frac: self.progress(name, frac)

    def cached(self, key: str, label: str, train: Callable[[], nn.Module], extra: dict | None = None) -> nn.Module:
        """Load model `key` from the store, or train, time and store it; metadata in self.meta."""
        model, self.meta[label] = cached_model(self.store, key, label, self.build, train, extra)
        return model.to(self.device).eval()

    def problem(self, easy: np.ndarray | None = None) -> Problem:
        s = self.splits
        return Problem(self.x, self.labels, s.retain, s.forget, self.pool.num_classes, easy)

    def env(self, seed: int, progress: Progress | None = None) -> Env:
        return Env(self.device, seed, self.build, progress)


def cached_model(store: Store, key: str, label: str, build: Callable[[], nn.Module],
                 train: Callable[[], nn.Module], extra: dict | None = None) -> tuple[nn.Module, dict]:
    """Load model `key` from `store` into `build()`, or train it, time it and store it.
    Returns (model, metadata with 'seconds' and 'cached')."""
    if store.has_model(key):
        model, meta = store.load_model(key, build())
        logger.info("reusing stored %s model (key %s)", label, key)
        return model, {**meta, "cached": True}
    start = time.perf_counter()
    model = train()
    meta = {"seconds": time.perf_counter() - start, "label": label, **(extra or {})}
    store.save_model(key, model, meta)
    return model, {**meta, "cached": False}


def base_key(run: Run | RunConfig) -> str:
    """The store key of the original model: it depends on the data, split, seed, model and recipe
    only, never on the forget set."""
    c = run.cfg if isinstance(run, Run) else run
    return config_key("original", c.dataset, c.data_root, to_dict(c.split), c.seed, c.model, to_dict(c.train))


@dataclass(frozen=True)
class Original:
    """The original model with its pool and D / H / T split (no forget set needed)."""
    model: nn.Module
    pool: Pool
    train: np.ndarray
    holdout: np.ndarray
    test: np.ndarray
    device: torch.device
    meta: dict


def original_model(cfg: RunConfig, *, store: Store | None = None, progress: Progress | None = None) -> Original:
    """Load or train M_o alone, e.g. to embed the training set before a forget set is chosen.
    Shares the store key with `execute`, so a later run reuses it."""
    pool = load_dataset(cfg.dataset, cfg.data_root)
    device = resolve_device(cfg.device)
    train, hold, test = split_pool(len(pool), cfg.split.holdout, cfg.split.test, cfg.seed, pool.official_test)
    x = pool_inputs(pool, device)
    build = lambda: build_model(cfg.model, pool.in_channels, pool.num_classes)  # noqa: E731
    model, meta = cached_model(store or Store(), base_key(cfg), "original", build, lambda: train_from_scratch(
        build, x, pool.y.numpy(), train, cfg.train, device=device, seed=cfg.seed, progress=progress))
    return Original(model.to(device).eval(), pool, train, hold, test, device, meta)


def train_original_and_golds(run: Run) -> None:
    c, s = run.cfg, run.splits
    key = base_key(run)
    run.models["original"] = run.cached(key, "original", lambda: train_from_scratch(
        run.build, run.x, run.labels, s.train, c.train, device=run.device, seed=c.seed,
        progress=run.stage("original")))
    for k in range(c.gold_seeds):
        stage, seed = f"gold {k + 1}/{c.gold_seeds}", gold_seed(c.seed, k)
        run.models[f"gold_{k}"] = run.cached(config_key("gold", key, s.forget, seed), f"gold_{k}",
                                             lambda: train_from_scratch(run.build, run.x, run.labels, s.retain, c.train,
                                                                        device=run.device, seed=seed,
                                                                        progress=run.stage(stage)))


def prepare_twin(run: Run) -> None:
    """H_f, M_t, M_c, twin features and labels, the fitted predictor; run.extras['twin']."""
    c, s, dev = run.cfg, run.splits, run.device
    original, report = run.models["original"], run.stage("twin")
    h_f = select_twin_forget(c.forget, run.labels, s.holdout, s.forget, c.twin.min_size, c.seed)
    if len(h_f) < 2:
        raise ValueError(f"the holdout set has {len(h_f)} sample(s) of the forget set's classes; "
                         "the twin problem needs at least 2 (use a larger holdout fraction)")
    key = config_key("twin", base_key(run), h_f, to_dict(c.twin))
    o_probs_train = predict(original, run.x, s.train, device=dev)
    target = float((o_probs_train.argmax(1) == run.labels[s.train]).mean())
    twin = run.cached(key, "twin", lambda: train_twin_model(
        original, run.x, run.labels, s.train, h_f, target, c.twin, device=dev, seed=c.seed,
        progress=lambda f: report(0.5 * f)))
    curriculum = run.cached(config_key("curriculum", key), "curriculum", lambda: train_curriculum(
        lambda: run.build(c.seed + 7), run.x, run.labels, np.union1d(s.train, h_f), c.twin, device=dev,
        seed=c.seed + 7, progress=lambda f: report(0.5 + 0.3 * f)))
    fkey = config_key("twin-features", key, to_dict(c.features))
    arrays = run.store.load_arrays(fkey)
    if arrays is None:
        start = time.perf_counter()
        ctx = FeatureContext(twin, curriculum, run.x, run.labels, h_f, s.train, dev, c.features)
        g = (predict(original, run.x, h_f, device=dev).argmax(1) == run.labels[h_f]).astype(np.int64)
        arrays = {"features": compute_features(ctx, c.features.features), "g": g}
        arrays["seconds"] = np.array(time.perf_counter() - start)
        run.store.save_arrays(fkey, **arrays)
    report(0.9)
    train_embedding(run)
    start = time.perf_counter()
    fitted = fit_predictor(arrays["features"], arrays["g"], c.predictor, c.seed)
    fit_seconds = time.perf_counter() - start
    run.extras.update(twin_forget=h_f, twin_model=twin, curriculum=curriculum, twin_features=arrays["features"],
                      twin_g=arrays["g"], fitted=fitted, twin_key=key)
    tune_methods(run, fitted)
    report(1.0)
    # The reusable twin preparation shared by all methods, from each part's measured (possibly
    # stored) time; a method's own twin-tuning time is added to it in its report entry.
    run.extras["twin_seconds"] = (run.meta["twin"]["seconds"] + run.meta["curriculum"]["seconds"]
                                  + float(arrays["seconds"]) + fit_seconds + run.extras["train_embedding_seconds"])


def tune_methods(run: Run, fitted: FittedPredictor) -> None:
    """Twin-tune every method that has a tuned entry; chosen params in run.extras['tuning']."""
    c, h_f = run.cfg, run.extras["twin_forget"]
    gold_probs = predict(run.models["original"], run.x, h_f, device=run.device)
    problem = Problem(run.x, run.labels, run.splits.train, h_f, run.pool.num_classes, fitted.oof_easy)
    chosen = {}
    for name in dict.fromkeys(e.method for e in method_entries(c) if e.tuned):
        base = c.method_params.get(name, {})
        key = config_key("tune", run.extras["twin_key"], name, METHODS[name].defaults, base, METHODS[name].grid,
                         fitted.oof_easy, c.seed)
        result = run.store.load_json(key)
        if result is None:
            start = time.perf_counter()
            params, trials = twin_tune(name, base, METHODS[name].grid, run.extras["twin_model"], problem,
                                       gold_probs, run.env(c.seed))
            result = {"params": params, "trials": trials, "seconds": time.perf_counter() - start}
            run.store.save_json(key, result)
        else:
            logger.info("reusing stored twin-tuning of %s (key %s)", name, key)
        chosen[name] = result
    run.extras["tuning"] = chosen


def train_embedding(run: Run) -> np.ndarray:
    """M_o's penultimate embedding of every training sample, computed once per original model."""
    key = config_key("train-embedding", base_key(run))
    cached = run.store.load_arrays(key)
    if cached is None:
        start = time.perf_counter()
        cached = {"embedding": embed(run.models["original"], run.x, run.splits.train, device=run.device)}
        cached["seconds"] = np.array(time.perf_counter() - start)
        run.store.save_arrays(key, **cached)
    run.extras["train_embedding_seconds"] = float(cached["seconds"])
    return cached["embedding"]


def forget_easy_mask(run: Run) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(raw features, p(easy), easy mask) of the real forget set, under M_o with reference D_r."""
    c, s = run.cfg, run.splits
    train_emb = train_embedding(run)
    ctx = FeatureContext(run.models["original"], run.extras["curriculum"], run.x, run.labels,
                         s.forget, s.retain, run.device, c.features,
                         reference_embedding=train_emb[np.searchsorted(s.train, s.retain)])
    feats = compute_features(ctx, c.features.features)
    proba, easy = run.extras["fitted"].predict(feats)
    # A class with no retained sample cannot be predicted by any model retrained on D_r, so its
    # forget samples are hard by construction (whole-class forgetting), whatever the twin says.
    orphan = ~np.isin(run.labels[s.forget], run.labels[s.retain])
    proba, easy = np.where(orphan, 0.0, proba), easy & ~orphan
    return feats, proba, easy


def run_methods(run: Run) -> None:
    """Unlearn with every requested method (cached by everything that determines the result)."""
    c = run.cfg
    for entry in method_entries(c):
        name = entry.name
        params = run.extras["tuning"][entry.method]["params"] if entry.tuned else c.method_params.get(name, {})
        method = get_method(entry.method, **params)
        start, easy = time.perf_counter(), None
        if method.needs_predictor:
            feats, proba, easy = forget_easy_mask(run)
            run.extras.update(forget_features=feats, forget_proba=proba, forget_easy=easy)
        pre = time.perf_counter() - start
        key = config_key("method", base_key(run), run.splits.forget, entry.method, method.params, easy, c.seed)
        run.models[name] = run.cached(key, name, lambda: method.unlearn(
            run.models["original"], run.problem(easy), run.env(c.seed, run.stage(name))),
            extra={"params": method.params})
        run.meta[name]["seconds"] += pre
        run.meta[name]["params"] = method.params


def execute(cfg: RunConfig, *, store: Store | None = None, progress: StageProgress | None = None) -> Run:
    """Run every stage of `cfg`; returns the filled-in Run (see report.build_report)."""
    validate(cfg)
    pool = load_dataset(cfg.dataset, cfg.data_root)
    splits = make_splits(pool.y.numpy(), cfg.forget, holdout=cfg.split.holdout, test=cfg.split.test,
                         seed=cfg.seed, classes=pool.classes, official_test=pool.official_test)
    run = Run(cfg, pool, splits, resolve_device(cfg.device), store or Store(), progress or (lambda s, f: None))
    logger.info("dataset %s: |D|=%d |H|=%d |T|=%d |D_f|=%d on %s", cfg.dataset, len(splits.train),
                len(splits.holdout), len(splits.test), len(splits.forget), run.device)
    train_original_and_golds(run)
    if needs_twin(cfg):
        prepare_twin(run)
    run_methods(run)
    return run
