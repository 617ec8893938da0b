"""Tests for tmu.inspect: the prediction matrix, the common embedding, layer-wise CKA, the
membership-inference view, and the inspect.npz of a run folder."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

import tmu.inspect as ti
from tmu import evaluate as ev
from tmu.config import RunConfig, from_dict
from tmu.inspect.attack import (
    SWEEP_ROWS,
    lira_offline,
    logit_confidence,
    loss_sweep,
    roc,
)
from tmu.inspect.cka import block_grams, unit_gram
from tmu.inspect.embedding import fit_alignment, pca2, point_ids, r2
from tmu.inspect.source import RunData, gold_names, probs_at
from tmu.inspect.store import InspectionFormatError
from tmu.models import MODELS, build_model, model_blocks
from tmu.pipeline import execute
from tmu.report import evaluate_result
from tmu.runs import RunFolderError, load_run, run_to_folder, write_run

CPU = torch.device("cpu")

# ---------------------------------------------------------------------------------------- CKA


def random_features(n: int, d: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d))


@pytest.mark.parametrize("n, d", [(200, 20), (30, 100)])  # feature form, Gram form
def test_cka_of_a_representation_with_itself_is_one(n, d):
    x = random_features(n, d, 0)
    assert ti.linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("n, d", [(200, 20), (30, 100)])
def test_cka_is_invariant_to_orthogonal_maps_and_isotropic_scaling(n, d):
    x = random_features(n, d, 1)
    y = np.tanh(x @ random_features(d, d, 2))  # a related but different representation
    q, _ = np.linalg.qr(random_features(d, d, 3))
    base = ti.linear_cka(x, y)
    assert 0.05 < base < 0.99
    assert ti.linear_cka(x @ q, y) == pytest.approx(base, abs=1e-10)
    assert ti.linear_cka(7.5 * x, 0.01 * y) == pytest.approx(base, abs=1e-10)
    assert ti.linear_cka(x + 3.0, y) == pytest.approx(base, abs=1e-10)  # centred inside


def test_feature_and_gram_forms_agree():
    x, y = random_features(60, 8, 4), random_features(60, 5, 5) + random_features(60, 8, 4)[:, :5]
    feature = ti.linear_cka(x, y)  # n > d: feature form
    gram = float((unit_gram(torch.as_tensor(x)) * unit_gram(torch.as_tensor(y))).sum())
    assert feature == pytest.approx(gram, abs=1e-6)  # unit_gram multiplies in float32


def test_cka_of_independent_features_is_near_zero():
    assert ti.linear_cka(random_features(20000, 5, 6), random_features(20000, 5, 7)) < 0.01


def test_cka_needs_the_same_inputs():
    with pytest.raises(ValueError, match="same inputs on both sides, got 10 and 9 rows"):
        ti.linear_cka(random_features(10, 3, 0), random_features(9, 3, 0))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_declares_blocks_that_hook_its_forward(name):
    torch.manual_seed(0)
    model = build_model(name, 1, 10, seed=0).eval()
    x = torch.rand(6, 1, 8, 8)
    blocks = model_blocks(model)
    assert list(blocks)[-2:] == ["embed", "head"] and len(blocks) >= 4
    grams = block_grams(model, x, np.arange(6), CPU, batch_size=4)  # two batches
    with torch.no_grad():
        embed, logits = model.embed(x), model(x)
    assert torch.allclose(grams["embed"], unit_gram(embed), atol=1e-6)
    assert torch.allclose(grams["head"], unit_gram(logits), atol=1e-6)


def test_a_model_without_blocks_is_named():
    with pytest.raises(TypeError, match="Linear does not declare its main blocks"):
        model_blocks(torch.nn.Linear(2, 2))


# ------------------------------------------------------------------------------------- attack


def test_roc_auc_equals_sklearn_with_ties():
    rng = np.random.default_rng(0)
    pos, neg = rng.integers(0, 5, 40).astype(float), rng.integers(0, 4, 60).astype(float)
    fpr, tpr, auc = roc(pos, neg)
    truth = np.r_[np.ones(40), np.zeros(60)]
    assert auc == pytest.approx(roc_auc_score(truth, np.r_[pos, neg]), abs=1e-12)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)
    assert np.isnan(roc(pos, np.array([]))[2])


def test_logit_confidence_keeps_the_margin_of_a_saturated_softmax():
    logits = torch.tensor([[0.0, 2.0, -1.0], [40.0, 0.0, 0.0]])
    probs = torch.softmax(logits, 1).numpy()  # float32: row 1's p_0 rounds to exactly 1.0
    assert probs[1, 0] == 1.0
    phi = logit_confidence(probs, np.array([1, 0]))
    expected = [2.0 - np.log(np.exp(0.0) + np.exp(-1.0)), 40.0 - np.log(2.0)]
    assert phi == pytest.approx(expected, abs=1e-4)


def synthetic_phi(seed: int, refs: int, gap: float):
    """Per-sample OUT means; references scatter around them; the target adds `gap` on its
    members (the forget set) only."""
    rng = np.random.default_rng(seed)
    mu = {k: rng.normal(0, 6, 300) for k in ("forget", "test")}
    ref = {f"r{j}": {k: m + rng.normal(0, 1, 300) for k, m in mu.items()} for j in range(refs)}
    target = {"forget": mu["forget"] + gap + rng.normal(0, 1, 300)}
    target["test"] = mu["test"] + rng.normal(0, 1, 300)
    return target, ref


@pytest.mark.parametrize("refs", [1, 4])
def test_lira_separates_clear_members(refs):
    target, ref = synthetic_phi(0, refs, gap=4.0)
    lira = lira_offline(target, ref, alpha=0.05)
    assert lira.auc > 0.9 and lira.references == tuple(ref)
    assert (lira.test_score > lira.threshold).mean() <= 0.05
    assert lira.forget_member.mean() > 0.5
    # the per-sample means matter: a global loss-style threshold on phi alone is far weaker
    _, _, plain = roc(target["forget"], target["test"])
    assert plain < lira.auc - 0.2


def test_lira_on_non_members_is_chance():
    target, ref = synthetic_phi(1, 3, gap=0.0)
    lira = lira_offline(target, ref)
    assert 0.4 < lira.auc < 0.6
    assert lira.sigma == pytest.approx(1.0, abs=0.1)  # pooled spread of the references


def test_lira_needs_a_reference():
    with pytest.raises(ValueError, match="at least one OUT reference model"):
        lira_offline({"forget": np.zeros(2), "test": np.zeros(2)}, {})


def test_loss_sweep_rates_are_the_fractions_at_or_below_each_threshold():
    loss = {
        "forget": np.array([0.0, 0.1, 0.5, 2.0]),
        "retain": np.array([0.0, 0.05, 0.1, 0.2]),
        "holdout": np.array([0.5, 1.0]),
        "test": np.array([0.3, 0.8, 3.0]),
    }
    easy = np.array([True, True, True, False])
    sweep = loss_sweep(loss, easy, n_thresholds=10)
    assert sweep.tau == ev.loss_threshold(loss["retain"], np.r_[loss["holdout"], loss["test"]])
    assert sweep.tau in sweep.thresholds and np.all(np.diff(sweep.thresholds) > 0)
    for row, values in [("forget", loss["forget"]), ("forget_hard", loss["forget"][~easy])]:
        rate = sweep.member_rate[SWEEP_ROWS.index(row)]
        assert rate == pytest.approx([(values <= t).mean() for t in sweep.thresholds])
    assert sweep.rate("forget") == 0.5  # tau = 0.2: 0.0 and 0.1 are members
    assert sweep.rate("retain", 10.0) == 1.0


# ------------------------------------------------------------------------------- embedding


@pytest.mark.parametrize("kind", ["lstsq", "procrustes"])
def test_alignment_recovers_a_rotated_and_scaled_copy(kind):
    target = random_features(300, 12, 8)
    q, _ = np.linalg.qr(random_features(12, 12, 9))
    source = 3.0 * target @ q.T + 5.0  # the same representation in another basis
    mapped = fit_alignment(source[:200], target[:200], kind)(source[200:])
    assert r2(mapped, target[200:]) > 0.999


def test_procrustes_needs_equal_widths():
    with pytest.raises(ValueError, match="procrustes needs equal widths, got 4 and 3"):
        fit_alignment(random_features(10, 4, 0), random_features(10, 3, 0), "procrustes")
    with pytest.raises(ValueError, match="unknown alignment 'tsne'"):
        fit_alignment(random_features(10, 4, 0), random_features(10, 4, 0), "tsne")


def test_pca2_finds_the_two_widest_directions():
    x = random_features(500, 4, 10) * np.array([10.0, 0.1, 5.0, 0.1])
    _, axes, explained = pca2(x)
    assert np.abs(axes[:, 0]).argmax() == 0 and np.abs(axes[:, 1]).argmax() == 2
    assert explained.sum() > 0.99 and (axes[np.abs(axes).argmax(0), [0, 1]] > 0).all()


# ------------------------------------------------------------------- a tiny run and its folder

TINY = {
    "dataset": "digits",
    "forget": "random:0.1",
    "device": "cpu",
    "gold_seeds": 2,
    "methods": ["finetune", "random_label"],
    "train": {"epochs": 2, "batch_size": 32},
    "method_params": {"finetune": {"epochs": 1}, "random_label": {"epochs": 1}},
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A tiny digits run written by run_to_folder (two gold seeds, two methods), with its
    store: (out, store root, config)."""
    from tmu.artifacts import Store

    base = tmp_path_factory.mktemp("inspect")
    cfg = from_dict(RunConfig, TINY)
    store = Store(base / "store")
    run_to_folder(cfg, base / "out", store=store)
    return base / "out", store, cfg


@pytest.fixture(scope="module")
def loaded(folder):
    return load_run(folder[0])


@pytest.fixture(scope="module")
def data(loaded) -> RunData:
    return RunData.from_loaded(loaded)


@pytest.mark.slow
def test_run_data_orders_models_and_sets(data, loaded):
    assert list(data.models) == ["original", "gold_0", "gold_1", "finetune", "random_label"]
    assert data.golds == ["gold_0", "gold_1"] and data.targets[0] == "original"
    assert gold_names(["gold_10", "tmu", "gold_2"]) == ["gold_2", "gold_10"]
    ids = np.r_[loaded.split["test"][:3], loaded.split["forget"][:2]]
    rows = probs_at(loaded.predictions, loaded.split, "gold_1", ids)
    assert np.array_equal(rows[:3], loaded.predictions["gold_1/test"][:3])
    assert np.array_equal(rows[3:], loaded.predictions["gold_1/forget"][:2])


@pytest.mark.slow
def test_prediction_matrix_counts_and_cells(loaded):
    forget = loaded.split["forget"]
    m = ti.prediction_matrix(loaded, "finetune")
    g = loaded.predictions["gold_0/forget"].argmax(1)
    u = loaded.predictions["finetune/forget"].argmax(1)
    assert m.counts.shape == (10, 10) and m.counts.sum() == len(forget)
    agreement = ev.agreement(
        loaded.predictions["finetune/forget"], loaded.predictions["gold_0/forget"]
    )
    assert np.trace(m.counts) == round(agreement * len(forget)) and m.agreement == agreement
    for r, c in [(3, 3), *zip(*np.nonzero(m.counts - np.diag(np.diag(m.counts))))]:
        assert np.array_equal(m.cell(r, c), forget[(g == r) & (u == c)])
        assert len(m.cell(r, c)) == m.counts[r, c]
    original = ti.prediction_matrix(loaded, "original", reference="gold_1")
    assert original.counts.sum() == len(forget) and original.row_model == "gold_1"
    ensemble = ti.prediction_matrix(loaded, "finetune", reference="gold")  # mean gold softmax
    mean = (loaded.predictions["gold_0/forget"] + loaded.predictions["gold_1/forget"]) / 2
    assert np.array_equal(ensemble.rows, mean.argmax(1)) and np.array_equal(ensemble.cols, u)


@pytest.mark.slow
def test_prediction_matrix_of_one_class_and_of_any_ids(loaded):
    y = loaded.dataset.tensors[1].numpy()
    forget = loaded.split["forget"]
    three = ti.prediction_matrix(loaded, "random_label", cls=3)
    assert np.array_equal(three.ids, forget[y[forget] == 3]) and three.counts.sum() == len(
        three.ids
    )
    test = loaded.split["test"][:25]
    on_test = ti.prediction_matrix(loaded, "original", ids=test)
    assert on_test.counts.sum() == 25
    assert np.array_equal(on_test.cols, loaded.predictions["original/test"][:25].argmax(1))


@pytest.mark.slow
def test_prediction_matrix_errors(loaded):
    with pytest.raises(ValueError, match=r"unknown model 'tmu'; models of this run: \['finetune'"):
        ti.prediction_matrix(loaded, "tmu")
    with pytest.raises(ValueError, match="class 10 does not exist; classes are 0..9"):
        ti.prediction_matrix(loaded, "finetune", cls=10)
    with pytest.raises(ValueError, match=r"sample ids \[1797\] are in none of"):
        ti.prediction_matrix(loaded, "finetune", ids=[1797])
    with pytest.raises(ValueError, match=r"cell \(0, 10\) is outside the 10x10 matrix"):
        ti.prediction_matrix(loaded, "finetune").cell(0, 10)


@pytest.mark.slow
def test_run_folder_holds_the_inspection(folder, loaded):
    assert (folder[0] / "inspect.npz").is_file()
    insp = loaded.inspect
    assert isinstance(insp, ti.Inspection) and insp.seconds > 0
    assert loaded.report["inspect"] == insp.summary()
    assert loaded.report["inspect"]["cka"]["layers"] == ["block1", "block2", "embed", "head"]


@pytest.mark.slow
def test_stored_inspection_equals_computing_it_on_demand(loaded):
    stored, fresh = loaded.inspect, ti.compute(loaded)
    ours, theirs = stored.to_arrays(), fresh.to_arrays()
    assert set(ours) == set(theirs)
    for key in ours:
        if key == "seconds":
            continue
        a, b = ours[key], theirs[key]
        if a.dtype.kind in "fc":
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=key)
        else:
            assert np.array_equal(a, b), key
    assert ti.get(loaded) is stored


@pytest.mark.slow
def test_embedding_points_and_original_panel(loaded, data):
    e = loaded.inspect.embedding
    forget = loaded.split["forget"]
    assert np.array_equal(e.ids[e.sets == "forget"], forget) and len(e.ids) <= 2000
    assert set(e.sets) == {"forget", "retain", "test"} and len(np.unique(e.ids)) == len(e.ids)
    assert e.coords.shape == (5, len(e.ids), 2) and e.models[0] == "original"
    assert e.fit_r2[0] == 1.0 and (e.fit_r2[1:] > 0.5).all()
    assert np.array_equal(e.preds[e.index("gold_1")], data.probs("gold_1", e.ids).argmax(1))
    on_forget = e.agrees("finetune")[e.sets == "forget"].mean()
    assert on_forget == ti.prediction_matrix(loaded, "finetune").agreement
    small_ids, small_sets = point_ids(data, 50)
    assert len(small_ids) == 50 and (small_sets == "forget").sum() == 25


@pytest.mark.slow
def test_cka_table_of_the_run(loaded):
    c = loaded.inspect.cka
    assert c.models == ("original", "finetune", "random_label") and c.golds == ("gold_0", "gold_1")
    assert c.values.shape == (2, 3, 2, 4) and c.floor.shape == (2, 1, 4)
    assert np.array_equal(c.pairs, [[0, 1]])
    assert ((c.values > 0) & (c.values <= 1 + 1e-9)).all()
    assert np.array_equal(c.ids["forget"], loaded.split["forget"])  # fewer than 500
    floor = c.noise_floor("test")
    assert floor.shape == (4,) and c.vs_gold("forget").shape == (3, 4)


@pytest.mark.slow
def test_attack_view_matches_the_report(loaded):
    a = loaded.inspect.attacks
    report = loaded.report["models"]
    y = loaded.dataset.tensors[1].numpy()[loaded.split["forget"]]
    ensemble = (loaded.predictions["gold_0/forget"] + loaded.predictions["gold_1/forget"]) / 2
    assert np.array_equal(a.easy, ensemble.argmax(1) == y)  # the gold ensemble's correct ones
    assert a.models == ("original", "gold_0", "gold_1", "finetune", "random_label")
    for name in a.models:
        entry = report["gold"][int(name[-1])] if name.startswith("gold_") else report[name]
        sweep = a.view(name).sweep
        assert sweep.tau == entry["mia"]["threshold"]
        assert sweep.rate("forget") == entry["mia"]["forget_member_rate"]
        assert sweep.auc == pytest.approx(entry["mia"]["auc_forget_vs_test"], abs=1e-12)
    summary = loaded.report["inspect"]["attack"]
    assert summary["forget_easy"] + summary["forget_hard"] == len(y)
    gold = a.view("gold_0")
    assert gold.lira.references == ("gold_1",)  # leave-one-out over the gold seeds
    assert a.view("original").lira.references == ("gold_0", "gold_1")
    rates = summary["models"]["random_label"]["loss"]
    flags = a.view("random_label").forget_loss <= a.view("random_label").sweep.tau
    assert rates["easy_member_rate"] == pytest.approx(flags[a.easy].mean())


@pytest.mark.slow
def test_riskiest_ids_come_first(loaded):
    a = loaded.inspect.attacks
    risk = a.view("original").risk()
    top = a.riskiest("original", 5)
    assert len(top) == 5 and set(top) <= set(loaded.split["forget"])
    position = {i: k for k, i in enumerate(a.forget_ids)}
    scores = [risk[position[i]] for i in a.riskiest("original")]
    assert scores == sorted(scores, reverse=True)
    with pytest.raises(ValueError, match="unknown model 'tmu'"):
        a.view("tmu")


@pytest.mark.slow
def test_a_lone_gold_seed_has_no_lira(data):
    golds = {"original", "gold_0", "finetune"}
    one = RunData(
        {k: v for k, v in data.models.items() if k in golds},
        data.x,
        data.labels,
        data.split,
        {k: v for k, v in data.predictions.items() if k.split("/")[0] in golds},
        data.num_classes,
        data.seed,
        data.device,
    )
    a = ti.attacks(one)
    assert a.view("gold_0").lira is None and a.view("finetune").lira.references == ("gold_0",)
    assert a.view("gold_0").risk() == pytest.approx(-a.view("gold_0").forget_loss)
    assert a.summary()["models"]["gold_0"]["lira"] is None
    assert ti.cka_table(one, max_samples=20).noise_floor() is None


@pytest.mark.slow
def test_an_old_folder_without_inspect_npz_loads_and_computes(folder, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(folder[0], old)
    (old / "inspect.npz").unlink()
    run = load_run(old)
    assert run.inspect is None
    assert ti.get(run).summary()["cka"] == run.report["inspect"]["cka"]
    with pytest.raises(ValueError, match="was loaded without its data"):
        ti.compute(load_run(old, load_data=False))


@pytest.mark.slow
def test_a_damaged_inspect_npz_is_a_run_folder_error(folder, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(folder[0], bad)
    raw = (bad / "inspect.npz").read_bytes()
    (bad / "inspect.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(RunFolderError, match=r"inspect\.npz: not a readable inspection archive"):
        load_run(bad)
    with np.load(folder[0] / "inspect.npz") as npz:
        arrays = {k: npz[k] for k in npz.files if k != "cka/values"}
    np.savez(bad / "inspect.npz", **arrays)
    with pytest.raises(RunFolderError, match=r"inspect\.npz: .*missing array 'cka/values'"):
        load_run(bad)
    with pytest.raises(InspectionFormatError, match="format 2, this version reads format 1"):
        ti.Inspection.from_arrays({**arrays, "format": np.asarray(2)})


@pytest.mark.slow
def test_rewriting_a_folder_without_an_inspection_removes_the_old_one(folder, tmp_path):
    out, store, cfg = folder
    again = tmp_path / "again"
    shutil.copytree(out, again)
    result = execute(cfg, store=store)  # every model comes from the store
    report, probs = evaluate_result(result)
    write_run(result, report, probs, again)
    assert not (again / "inspect.npz").exists() and load_run(again).inspect is None


# ----------------------------------------------------------------------------- gap


def hand_predictions():
    """Four forget samples (ids 0..3), labels 0, 0, 1, 1; two golds, the original, a method."""
    onehot = lambda rows: np.eye(2)[rows] * 0.9 + 0.05  # noqa: E731
    split = {"forget": np.arange(4), "retain": np.array([4, 5]), "test": np.array([6, 7])}
    preds = {
        "original/forget": np.array([[0.99, 0.01], [0.6, 0.4], [0.01, 0.99], [0.2, 0.8]]),
        "gold_0/forget": np.array([[0.1, 0.9], [0.6, 0.4], [0.01, 0.99], [0.8, 0.2]]),
        "gold_1/forget": np.array([[0.3, 0.7], [0.6, 0.4], [0.01, 0.99], [0.6, 0.4]]),
        "tmu/forget": onehot([1, 0, 1, 0]),
    }
    for m in ("original", "gold_0", "gold_1", "tmu"):
        preds[f"{m}/retain"] = onehot([0, 1])
        preds[f"{m}/test"] = onehot([0, 1]) if m != "tmu" else onehot([1, 1])
    return preds, split, np.array([0, 0, 1, 1, 0, 1, 0, 1])


def test_memorisation_is_the_originals_probability_minus_the_gold_ensembles():
    from tmu.inspect.gap import by_memorisation, memorisation

    preds, split, labels = hand_predictions()
    mem = memorisation(preds, split, labels)
    np.testing.assert_allclose(mem, [0.99 - 0.2, 0.0, 0.0, 0.8 - 0.3])
    bins = by_memorisation(preds, split, labels, ["original", "tmu"])
    # bins [-1, 0.1), [0.1, 0.3), [0.3, 0.6), [0.6, 1]: samples 1, 2 | - | 3 | 0
    assert bins.counts.tolist() == [2, 0, 1, 1]
    # gold ensemble: classes 1, 0, 1, 0; tmu: 1, 0, 1, 0 (agrees everywhere); original: 0, 0, 1, 1
    np.testing.assert_allclose(bins.agreement["tmu"][[0, 3]], [1.0, 1.0])
    np.testing.assert_allclose(bins.agreement["original"][[0, 3]], [1.0, 0.0])
    assert np.isnan(bins.agreement["tmu"][1])
    # memorised bin (sample 0): gold gets it wrong, the original right: delta +1; tmu like gold
    np.testing.assert_allclose(bins.delta["original"][3], 1.0)
    np.testing.assert_allclose(bins.delta["tmu"][3], 0.0)


def test_membership_gaps_are_signed_against_the_golds_mean():
    from tmu.inspect.gap import membership_gaps

    report = {
        "methods": ["tmu", "random_label"],
        "models": {
            "gold": [{"mia": {"forget_member_rate": 0.4}}, {"mia": {"forget_member_rate": 0.6}}],
            "original": {"mia": {"forget_member_rate": 0.9}},
            "tmu": {"mia": {"forget_member_rate": 0.5}},
            "random_label": {"mia": {"forget_member_rate": 0.1}},
        },
    }
    gaps = membership_gaps(report)
    assert gaps == pytest.approx({"original": 0.4, "tmu": 0.0, "random_label": -0.4})


@pytest.mark.slow
def test_the_neighbourhood_is_stored_and_binned_by_distance(loaded, data):
    from tmu.inspect.gap import by_distance, neighbourhood

    near = loaded.inspect.neighbourhood
    assert near is not None and len(near.ids) == len(near.distance)
    reference = np.union1d(loaded.split["retain"], loaded.split["test"])
    assert np.isin(near.ids, reference).all() and (near.distance >= 0).all()
    again = neighbourhood(data)
    np.testing.assert_array_equal(again.ids, near.ids)
    np.testing.assert_allclose(again.distance, near.distance, atol=1e-5)
    bins = by_distance(loaded.predictions, loaded.split, data.labels, near, ["finetune"])
    assert bins.counts.sum() == len(near.ids) and abs(bins.counts[0] - bins.counts[-1]) <= 2
    assert ((bins.agreement["finetune"] >= 0) & (bins.agreement["finetune"] <= 1)).all()
