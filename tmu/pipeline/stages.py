"""The data, original / gold and unlearning stages, each cached in the run store by a hash of
what produced it (so an identical second run retrains nothing and says so)."""

from __future__ import annotations

import logging
import time
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..accel import encode_pool
from ..artifacts import Store, config_key
from ..config import RunConfig, to_dict
from ..data import Pool, content_fingerprint, load_dataset
from ..forget import ForgetSpec, parse_forget, relabels
from ..models import file_fingerprint, load_weights, resolve_device
from ..splits import request
from ..training import embed
from ..unlearn import Env, cache_tag, get_method
from .plan import gold_seed, method_entries
from .values import Data, Decisions, Fitted, StageProgress, Trained, Twin, Unlearned

logger = logging.getLogger(__name__)

GPU_RESIDENT_BYTES = 2 << 30  # pools smaller than this live on the training device


def quiet(stage: str, frac: float) -> None:
    """The progress callback when nobody listens."""


def pool_inputs(pool: Pool, device: torch.device) -> torch.Tensor:
    """The pool's inputs on `device` when they fit under GPU_RESIDENT_BYTES, else on the CPU
    (the training loop then moves one batch at a time). For a GPU, 8-bit pools (values k/255)
    become uint8 codes first, a quarter of the memory; `tmu.training.rows` decodes them exactly.
    On the CPU the pool stays float32."""
    x = encode_pool(pool.x) if device.type == "cuda" else pool.x
    small = x.element_size() * x.nelement() < GPU_RESIDENT_BYTES
    return x.to(device) if small else x


def load_data(cfg: RunConfig, forget: ForgetSpec | None = None) -> Data:
    """Load the dataset, split it by seed into D / H / T and resolve the forget set."""
    forget = forget or parse_forget(cfg.forget)
    pool, device = load_dataset(cfg.dataset, cfg.data_root), resolve_device(cfg.device)
    truth, split = pool.y.numpy(), cfg.split
    splits, labels = request(
        truth,
        forget,
        holdout=split.holdout,
        test=split.test,
        seed=cfg.seed,
        classes=pool.classes,
        official_test=pool.official_test,
        label_noise=split.label_noise,
    )
    sizes = [len(splits.train), len(splits.holdout), len(splits.test), len(splits.forget)]
    logger.info("dataset %s: |D|=%d |H|=%d |T|=%d |D_f|=%d on %s", cfg.dataset, *sizes, device)
    x = pool_inputs(pool, device)
    return Data(pool, x, labels, splits, forget, device, cfg.model, true_labels=truth)


def base_key(cfg: RunConfig) -> str:
    """The store key of the original model: it depends on the data (for a user's image folder,
    on its current content), split, seed, model and recipe only, not on the forget set, unless
    the forget kind changes labels before training (`mislabeled:F`)."""
    split, train = to_dict(cfg.split), to_dict(cfg.train)
    parts = ["original", cfg.dataset, cfg.data_root, split, cfg.seed, cfg.model, train]
    fingerprint = content_fingerprint(cfg.dataset, cfg.data_root)  # "" for a registry dataset
    if fingerprint:
        parts.append(fingerprint)
    if cfg.original_weights:  # a model trained elsewhere: keyed by its bytes, not its path
        parts += ["weights", file_fingerprint(cfg.original_weights)]
    if relabels(cfg.forget):
        parts.append(str(parse_forget(cfg.forget)))
    return config_key(*parts)


def cached(
    store: Store,
    data: Data,
    key: str,
    label: str,
    train: Callable[[], nn.Module],
    extra: dict | None = None,
) -> Fitted:
    """Model `key` from the store, or trained by `train()` and stored; on the compute device."""
    model, meta = store.cached_model(key, label, data.build, train, extra)
    return Fitted(model.to(data.device).eval(), float(meta["seconds"]), bool(meta["cached"]), meta)


def train_original(
    cfg: RunConfig, data: Data, store: Store, progress: StageProgress = quiet
) -> Fitted:
    """M_o: trained from scratch on D (or loaded: its key ignores the forget set), or the
    weights of `cfg.original_weights`, a model trained elsewhere on this dataset."""
    report = lambda f: progress("original", f)  # noqa: E731
    if cfg.original_weights:
        pool = data.pool

        def train() -> nn.Module:
            return load_weights(data.build(), cfg.original_weights, cfg.model, pool.num_classes)
    else:

        def train() -> nn.Module:
            return data.scratch(data.splits.train, cfg.train, cfg.seed, report)

    fitted = cached(store, data, base_key(cfg), "original", train)
    report(1.0)  # also when loaded from the store, so that every stage reports
    return fitted


def train_models(
    cfg: RunConfig, data: Data, store: Store, progress: StageProgress = quiet
) -> Trained:
    """The original model and `cfg.gold_seeds` gold models retrained on D_r."""
    original, retain, golds = train_original(cfg, data, store, progress), data.splits.retain, []
    for k in range(cfg.gold_seeds):
        seed = gold_seed(cfg.seed, k)
        report = lambda f, stage=f"gold {k + 1}/{cfg.gold_seeds}": progress(stage, f)  # noqa: E731
        key = config_key("gold", base_key(cfg), data.splits.forget, seed)
        golds.append(
            cached(
                store, data, key, f"gold_{k}", lambda: data.scratch(retain, cfg.train, seed, report)
            )
        )
        report(1.0)
    return Trained(original, tuple(golds))


def train_embedding(
    cfg: RunConfig, data: Data, original: nn.Module, store: Store
) -> tuple[np.ndarray, float]:
    """M_o's penultimate embedding of every training sample (|D|, d), computed once per original
    model, and the seconds it took when first computed."""
    key = config_key("train-embedding", base_key(cfg))
    arrays = store.load_arrays(key)
    if arrays is None:
        start = time.perf_counter()
        arrays = {"embedding": embed(original, data.x, data.splits.train, device=data.device)}
        arrays["seconds"] = np.array(time.perf_counter() - start)
        store.save_arrays(key, **arrays)
    return arrays["embedding"], float(arrays["seconds"])


def unlearn(
    cfg: RunConfig,
    data: Data,
    trained: Trained,
    twin: Twin | None,
    decisions: Decisions | None,
    store: Store,
    progress: StageProgress = quiet,
) -> dict[str, Unlearned]:
    """Unlearn with every method entry (cached by everything that determines the result);
    `decisions` are the predictor's on D_f, for the methods that use them (None if none does)."""
    out, original, forget = {}, trained.original.model, data.splits.forget
    for entry in method_entries(cfg):
        tuning = twin.tuning[entry.method, entry.rule] if entry.tuned else None
        params = tuning.params if tuning else cfg.method_params.get(entry.method, {})
        method = get_method(entry.method, **params)
        rule = tuning.rule if tuning and tuning.rule else entry.rule
        mine = decisions.under(rule) if method.needs_predictor else None
        easy = None if mine is None else mine.easy
        # NAME+stop: stop at the twin's estimate of gold's accuracy on the forget set.
        target = twin.predictor.easy_rate if entry.stopped else None
        stop = [] if target is None else [target]  # (keys of entries without a target unchanged)
        policy = twin.predictor.flip_label if mine is not None else None
        key = config_key(
            "method",
            base_key(cfg),
            forget,
            entry.method,
            method.params,
            easy,
            cfg.seed,
            *stop,
            *cache_tag(entry.method),  # a plug-in's version and source ([] for a built-in)
            *([policy] if policy else []),
        )
        env = Env(data.device, cfg.seed, data.build, lambda f, n=entry.name: progress(n, f))
        problem = data.problem(easy, target, policy)
        fitted = cached(
            store,
            data,
            key,
            entry.name,
            lambda: method.unlearn(original, problem, env),
            extra={"params": method.params},
        )
        progress(entry.name, 1.0)
        seconds = fitted.seconds + (mine.seconds if mine else 0.0)
        flips = method.flips(original, problem, env) if mine is not None else None
        out[entry.name] = Unlearned(
            entry, fitted.model, method.params, seconds, fitted.cached, tuning, mine, flips
        )
    return out
