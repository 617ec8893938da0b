"""The twin problem's stage (method spec §3-6): H_f from the forget spec's kind, the twin model
M_t and the curriculum model M_c, the features of H_f and their labels, the fitted predictor, the
twin-tuning of every tuned method, and the predictor's decisions on the real forget set."""

from __future__ import annotations

import logging
import time

import numpy as np
from torch import nn

from ..artifacts import Store, config_key
from ..config import RunConfig, to_dict
from ..features import FeatureContext, compute_features
from ..predictor import DECISION_RULES, TWIN
from ..twin import (
    FittedPredictor,
    TwinFit,
    accuracy_on,
    choose_flip_policy,
    fit_predictor,
    train_curriculum,
    train_twin_model,
)
from ..tuning import choose_trial, tie_tolerance, twin_tune
from ..unlearn import METHODS, Env, Problem, cache_tag
from ..unlearn.flips import FLIP_LABELS
from .plan import method_entries
from .stages import base_key, cached, quiet, train_embedding
from .values import Data, Decisions, Fitted, StageProgress, Tuning, Twin

logger = logging.getLogger(__name__)


def prepare_twin(
    cfg: RunConfig, data: Data, original: Fitted, store: Store, progress: StageProgress = quiet
) -> Twin:
    """H_f, M_t, M_c, twin features and labels, the fitted predictor, and every twin-tuning."""
    s, dev, o = data.splits, data.device, original.model
    report = lambda f: progress("twin", f)  # noqa: E731
    h_f = data.forget.twin(data.labels, s.holdout, s.forget, cfg.twin.min_size, cfg.seed)
    # The twin's labels: the run's own, with H_f mislabeled too when D_f is (`mislabeled:F`).
    labels = data.forget.twin_labels(data.labels, h_f, data.pool.num_classes, cfg.seed)
    if len(h_f) < 2:
        raise ValueError(
            f"the holdout set has {len(h_f)} sample(s) of the forget set's classes; "
            "the twin problem needs at least 2 (use a larger holdout fraction)"
        )
    key = config_key("twin", base_key(cfg), h_f, to_dict(cfg.twin))
    target = accuracy_on(o, data.x, labels, data.forget.mirrored(s.train, s.forget), dev)
    made: dict = {}  # how the twin was made, stored beside its weights

    def train_twin() -> nn.Module:
        model, fit = train_twin_model(
            o,
            data.build,
            data.x,
            labels,
            s.train,
            h_f,
            target,
            cfg.twin,
            cfg.train,
            device=dev,
            seed=cfg.seed,
            progress=lambda f: report(0.5 * f),
        )
        made.update(mode=fit.mode, epochs=fit.epochs)
        return model

    twin = cached(store, data, key, "twin", train_twin, extra=made)
    twin_fit = TwinFit(
        twin.meta.get("mode", "finetune"),
        int(twin.meta.get("epochs", 0)),
        accuracy_on(twin.model, data.x, labels, h_f, dev),
        target,
    )
    d_and_h_f, seed = np.union1d(s.train, h_f), cfg.seed + 7
    curriculum = cached(
        store,
        data,
        config_key("curriculum", key),
        "curriculum",
        lambda: train_curriculum(
            lambda: data.build(seed),
            data.x,
            labels,
            d_and_h_f,
            cfg.twin,
            device=dev,
            seed=seed,
            progress=lambda f: report(0.5 + 0.3 * f),
        ),
    )
    features, g, feature_seconds = twin_features(
        cfg, data, labels, o, twin.model, curriculum.model, h_f, key, store
    )
    report(0.9)
    embedding, embedding_seconds = train_embedding(cfg, data, o, store)
    start = time.perf_counter()
    # The flip label TMU sends a flipped sample to: the policy whose labels land most often on
    # the twin gold's class (a user's explicit `hard_label` is the only candidate).
    fixed = cfg.method_params.get("tmu", {}).get("hard_label")
    problem = Problem(data.x, labels, s.train, h_f, data.pool.num_classes)
    policy, matches = choose_flip_policy(
        twin.model,
        problem,
        data.predict(o, h_f),
        Env(dev, cfg.seed, data.build),
        (fixed,) if fixed in FLIP_LABELS else None,
    )
    rule = cfg.predictor.rule
    fits = rule == TWIN or DECISION_RULES[rule].fitted_threshold  # a twin-fitted threshold
    match = matches[policy] if fits else 1.0
    fitted = fit_predictor(features, g, cfg.predictor, cfg.seed, match, policy, matches)
    fit_seconds = time.perf_counter() - start
    tuning = tune_methods(cfg, data, labels, o, twin.model, h_f, fitted, key, store)
    chosen = [t.rule for (_, rule), t in tuning.items() if rule == TWIN and t.rule]
    if fitted.rule == TWIN and chosen:  # the rule TMU's twin-tuning chose (none: no TMU)
        fitted = fitted.choose(chosen[0])
    report(1.0)
    # The reusable twin preparation shared by all methods, from each part's measured (possibly
    # stored) time; a method's own twin-tuning time is added to it in its report entry.
    seconds = twin.seconds + curriculum.seconds + feature_seconds + fit_seconds + embedding_seconds
    return Twin(
        h_f, twin.model, twin_fit, curriculum.model, features, g, fitted, embedding, tuning, seconds
    )


def twin_features(
    cfg: RunConfig,
    data: Data,
    labels: np.ndarray,
    original: nn.Module,
    twin_model: nn.Module,
    curriculum: nn.Module,
    h_f: np.ndarray,
    twin_key: str,
    store: Store,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Raw features of H_f under M_t (reference D), the twin labels g = [M_o right] (against the
    twin's `labels`) and the seconds they took when first computed."""
    key = config_key("twin-features", twin_key, to_dict(cfg.features))
    arrays = store.load_arrays(key)
    if arrays is None:
        start = time.perf_counter()
        ctx = FeatureContext(
            twin_model,
            curriculum,
            data.x,
            labels,
            h_f,
            data.splits.train,
            data.device,
            cfg.features,
        )
        g = (data.predict(original, h_f).argmax(1) == labels[h_f]).astype(np.int64)
        arrays = {"features": compute_features(ctx, cfg.features.features), "g": g}
        arrays["seconds"] = np.array(time.perf_counter() - start)
        store.save_arrays(key, **arrays)
    return arrays["features"], arrays["g"], float(arrays["seconds"])


def tune_methods(
    cfg: RunConfig,
    data: Data,
    labels: np.ndarray,
    original: nn.Module,
    twin_model: nn.Module,
    h_f: np.ndarray,
    fitted: FittedPredictor,
    twin_key: str,
    store: Store,
) -> dict[tuple[str, str | None], Tuning]:
    """Twin-tune every (method, decision rule) that has a tuned entry: unlearn (M_t, H_f) and
    score against M_o. A method that uses the predictor is tuned with its rule's out-of-fold
    mask (both of rate and gain for `predictor.rule=twin`, keeping the better)."""
    gold_probs = data.predict(original, h_f)
    k = data.pool.num_classes
    env, chosen = Env(data.device, cfg.seed, data.build), {}
    for name, rule in dict.fromkeys((e.method, e.rule) for e in method_entries(cfg) if e.tuned):
        base, m = cfg.method_params.get(name, {}), METHODS[name]
        rules = fitted.rules(rule) if m.needs_predictor else {None: fitted.oof_easy}
        masks = list(rules.values())
        policy = fitted.flip_label if m.needs_predictor else None
        key = config_key(
            "tune",
            twin_key,
            name,
            m.defaults,
            base,
            m.grid,
            *masks,
            cfg.seed,
            *cache_tag(name),
            *([policy] if policy else []),
        )
        result = store.load_json(key)
        if result is None:
            start, trials = time.perf_counter(), []
            for r, easy in rules.items():
                problem = Problem(
                    data.x, labels, data.splits.train, h_f, k, easy, flip_policy=policy
                )
                _, rows = twin_tune(name, base, m.grid, twin_model, problem, gold_probs, env)
                trials += [{**t, "rule": r} if r else t for t in rows]
            best = choose_trial(trials, m.inert, tie_tolerance(len(h_f)))
            result = {
                "params": best["params"],
                "rule": best.get("rule"),
                "trials": trials,
                "seconds": time.perf_counter() - start,
            }
            store.save_json(key, result)
        else:
            logger.info("reusing stored twin-tuning of %s (key %s)", name, key)
        chosen[name, rule] = Tuning(
            result["params"], result["trials"], float(result["seconds"]), result.get("rule")
        )
    return chosen


def decide(cfg: RunConfig, data: Data, original: nn.Module, twin: Twin) -> Decisions:
    """The predictor's easy / hard call on the real forget set, under M_o with reference D_r."""
    start, s = time.perf_counter(), data.splits
    reference = twin.train_embedding[np.searchsorted(s.train, s.retain)]
    ctx = FeatureContext(
        original,
        twin.curriculum,
        data.x,
        data.labels,
        s.forget,
        s.retain,
        data.device,
        cfg.features,
        reference_embedding=reference,
    )
    feats = compute_features(ctx, cfg.features.features)
    predictor = twin.predictor
    proba, _ = predictor.predict(feats)
    # A class with no retained sample cannot be predicted by any model retrained on D_r, so its
    # forget samples are hard by construction (whole-class forgetting), whatever the twin says.
    orphan = ~np.isin(data.labels[s.forget], data.labels[s.retain])
    proba = np.where(orphan, 0.0, proba)
    rules = dict.fromkeys([predictor.rule, *predictor.candidates])
    masks = {r: predictor.decide(proba, r) & ~orphan for r in rules if r != TWIN}
    easy = masks.get(predictor.rule)
    return Decisions(feats, proba, easy, time.perf_counter() - start, predictor.rule, masks)


def hardness(cfg: RunConfig, data: Data, original: nn.Module, twin: Twin) -> np.ndarray:
    """The twin predictor's p(hard) for every training sample (D, in `data.splits.train` order),
    each described as if it alone were forgotten (its distance feature leaves itself out): where
    a retrained model would likely be wrong, before any forget set is chosen. No gold model."""
    s = data.splits
    ctx = FeatureContext(
        original,
        twin.curriculum,
        data.x,
        data.labels,
        s.train,
        s.train,
        data.device,
        cfg.features,
        reference_embedding=twin.train_embedding,
        leave_one_out=True,
    )
    proba, _ = twin.predictor.predict(compute_features(ctx, cfg.features.features))
    return 1.0 - proba
