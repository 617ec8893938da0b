"""tmu.plots: every figure builds from the tiny run's report and arrays, with the expected
traces."""

import numpy as np

from tmu import plots
from tmu.runs import load_run


def test_report_figures(tiny_run):
    report = load_run(tiny_run, load_data=False).report
    methods = report["methods"]  # entries: tmu+rate beside tmu
    fig = plots.per_class_accuracy(report, "forget")
    assert [t.name for t in fig.data][:2] == ["gold (mean, band = seeds)", "original"]
    assert len(fig.data) == 2 + len(methods) and fig.data[0].error_y.array is not None
    for which in plots.SETS:
        plots.per_class_accuracy(report, which)
    head = plots.forget_headline(report)
    assert [t.name for t in head.data] == ["original", "gold", *methods]
    assert list(head.data[0].x) == ["accuracy on D_f", "agreement with gold"]
    assert head.data[2].y[1] == report["models"]["tmu"]["vs_gold"]["agreement_forget"]
    assert head.data[1].y[1] == report["noise_floor"]["agreement_forget"]
    gaps = plots.gaps_to_gold(report, "tmu")
    assert len(gaps.data) == 2 and gaps.data[1].name == "gold-vs-gold noise floor"
    assert (
        plots.quadrant_table(report["models"]["tmu"]["vs_gold"]["quadrants"], 10).data[0].type
        == "heatmap"
    )
    assert len(plots.mia_figure(report).data) == 2
    assert list(plots.compare_bars(report).data[0].x) == list(methods)
    assert [r["method"] for r in plots.compare_rows(report)] == list(methods)
    html = plots.html_report(report, {"compare": plots.compare_bars(report)})
    assert html.startswith("<!doctype html>") and "plotly" in html and "report.json" in html


def test_array_figures():
    xy, labels, ids = (
        np.random.default_rng(0).normal(size=(30, 2)),
        np.arange(30) % 3,
        np.arange(100, 130),
    )
    fig = plots.embedding_scatter(xy, labels, ids, ["a", "b", "c"], selected=np.array([100, 101]))
    assert len(fig.data) == 4 and fig.data[-1].name == "selected" and fig.layout.dragmode == "lasso"
    assert list(fig.data[0].customdata) == [100, 103, 106, 109, 112, 115, 118, 121, 124, 127]
    f = np.random.default_rng(1).normal(size=(20, 3))
    easy = np.arange(20) % 2
    pv = plots.predictor_view(f, easy, 1 - easy, f[:5], easy[:5], easy[:5])
    assert len(pv.data) == 3 * 2 * 4
    maps = {"Saliency": {"gold": np.ones((8, 8)), "tmu": np.zeros((8, 8))}}
    grid = plots.attribution_grid(
        np.zeros((1, 8, 8)),
        maps,
        {"Saliency": {"gold": 1.0, "tmu": float("nan")}},
        {"Saliency": {"gold": False, "tmu": True}},
    )
    assert len(grid.data) == 3 and any(
        "all zero" in (a.text or "") for a in grid.layout.annotations
    )
    assert plots.class_counts(np.array([3, 4]), ["x", "y"]).data[0].y == (3, 4)


def test_headline_adds_true_label_accuracy_for_a_mislabeled_report(tiny_run):
    report = load_run(tiny_run, load_data=False).report
    for e in [report["models"]["original"], *report["models"]["gold"], report["models"]["tmu"]]:
        e["acc_true_forget"] = 0.5
    for m in plots.method_names(report):
        report["models"][m]["acc_true_forget"] = 0.25
    head = plots.forget_headline(report)
    assert list(head.data[0].x)[-1] == "accuracy vs true labels"
    assert head.data[1].y[-1] == 0.5 and head.data[2].y[-1] == 0.25
    assert plots.compare_rows(report)[0]["forget acc (true labels)"] == 0.25
