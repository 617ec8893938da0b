"""Session-state keys and the settings' defaults.

Every key the pages and the service read or write is a constant here: widgets bind to the `w.*`
keys, so a setting survives page switches; `sel.*` is the point-and-click selection, `job.*` and
`run.*` what this session submitted and looks at.
"""

from __future__ import annotations

import os
import uuid
from typing import Any, MutableMapping

State = MutableMapping[str, Any]
"""`st.session_state` in the app, a plain dict in tests."""


class Key:
    """Session-state keys."""

    DATASET = "w.dataset"
    MODEL = "w.model"
    SEED = "w.seed"
    FORGET_MODE = "w.forget_mode"
    RANDOM_FRACTION = "w.random_fraction"
    CLASSES = "w.classes"
    SUB_CLASS = "w.sub_class"
    SUB_FRACTION = "w.sub_fraction"
    MISLABELED_FRACTION = "w.mislabeled_fraction"
    SCENARIO = "w.scenario"  # the scenario last applied (tmu.scenarios)
    RECIPE = "w.recipe"  # tmu.models.RECIPES: standard or memorise
    LABEL_NOISE = "w.label_noise"  # split.label_noise
    HOLDOUT = "w.holdout"  # split.holdout: a larger one leaves a smaller D (weak data)
    RATE_RULE = "w.rate_rule"  # also run TMU with the rate rule (tmu+rate)
    METHODS = "w.methods"
    GOLD_SEEDS = "w.gold_seeds"
    DEVICE = "w.device"
    QUICK = "w.quick"
    WIDGET_PREFIX = "w."
    SELECTION = "sel.ids"  # point-and-click forget ids (not a widget: survives every page)
    SELECTION_MSG = "sel.msg"  # a toast to show after the next rerun
    EMBED_CHART = "embed"  # the embedding scatter (its selection event)
    EMBED_PROJECTION = "embed.projection"
    EMBED_COLOR = "embed.color"
    THUMB_CLASS = "thumb.class"
    THUMB_PAGE = "thumb.page"
    UPLOAD = "upload"
    DATA_UPLOAD = "upload.data"  # a zip of class folders (Data page)
    DATA_NAME = "upload.data_name"
    UPLOAD_MSG = "upload.msg"  # why the last import or weights upload was refused
    WEIGHTS_UPLOAD = "upload.weights"  # a .pt state_dict (Data page)
    WEIGHTS = "own.weights"  # the store path of this tab's uploaded original weights
    WEIGHTS_NAME = "own.weights_name"  # how they are shown: the file's name and hash
    JOB = "job.id"  # the run job this session submitted last
    SIDE_JOBS = "job.side"  # this tab's embedding / estimate / hardness job (service.side_job)
    VISITOR = "visitor"  # this browser tab's id: the owner of its jobs
    MY_RUNS = "my.runs"  # the run folders of the jobs this tab submitted, oldest first
    RUN_PATH = "run.path"  # the run folder the result pages show
    RUN_PICKER = "pick.run"
    ALIGN_METHOD = "align.method"
    ATTR_METHOD = "attr.method"
    INSPECT_METHOD = "insp.method"
    INSPECT_TAB = "insp.tab"  # the open view (lazy tabs: only it runs)
    MATRIX_CLASS = "insp.matrix_class"
    MATRIX_CHART = "insp.matrix"  # the prediction matrix (its click event)
    MATRIX_CELL = "insp.cell"  # (gold's class, the method's class) of the clicked cell
    INSPECT_EMBED_COLOR = "insp.embed_color"
    INSPECT_EMBED_CHART = "insp.embed"
    INSPECT_SELECTION = "insp.selection"  # ids picked in the embedding panels
    ATTR_IDS = "attr.ids"
    COMPARE_METRIC = "cmp.metric"
    TOUR_SCENARIO = "w.tour_scenario"
    TOUR_FORGET = "w.tour_forget"
    TOUR_SEED = "w.tour_seed"
    TOUR_METHOD = "w.tour_method"
    TOUR_RUN = "tour.run"  # a finished run's id a link named (else the scenario's run)
    TOUR_LINK = "tour.link"  # the query parameters last applied or written
    TOUR_JOB = "tour.job"  # the Tour's run job
    RUN_MSG = "run.msg"  # why the last Run click queued nothing (Run page, Tour)
    FILE_MSG = "sel.file_msg"  # why the uploaded id list was refused
    # Action buttons: keyed, each acting in its on_click callback (never behind `if st.button`,
    # whose action runs only if that rerun reaches the line: a click could be lost)
    RUN_BUTTON = "btn.run"
    CANCEL_BUTTON = "btn.cancel"
    RETRY_BUTTON = "btn.retry_embedding"
    ADD_ROWS_BUTTON = "btn.add_rows"
    ADD_FILE_BUTTON = "btn.add_file"
    ESTIMATE_BUTTON = "btn.estimate"
    CLEAR_BUTTON = "btn.clear_selection"
    TOUR_RUN_BUTTON = "btn.tour_run"
    IMPORT_BUTTON = "btn.import"
    WEIGHTS_BUTTON = "btn.use_weights"
    TRAIN_BUTTON = "btn.train_original"
    PAINT_BUTTON = "btn.paint_hardness"
    CANCEL_EMBEDDING_BUTTON = "btn.cancel_embedding"
    CANCEL_ESTIMATE_BUTTON = "btn.cancel_estimate"
    CANCEL_HARDNESS_BUTTON = "btn.cancel_hardness"


FORGET_MODES = (
    "random fraction",
    "whole classes",
    "fraction of one class",
    "point and click",
    "mislabeled images",
)
RANDOM, CLASSES, SUBCLASS, POINT_AND_CLICK, MISLABELED = FORGET_MODES
DEFAULT_METHODS = ("tmu", "finetune")


def defaults() -> dict[str, Any]:
    """Widget defaults: the default scenario (tmu.scenarios.DEFAULT_SCENARIO) on top of the plain
    settings; `TMU_DASHBOARD_PROFILE=quick` and `TMU_DASHBOARD_DATASET` change them for
    dev/tests."""
    from tmu.scenarios import DEFAULT_SCENARIO

    from .scenario import scenario_widgets

    plain = {
        Key.DATASET: "mnist5k",
        Key.MODEL: "cnn",
        Key.SEED: 0,
        Key.FORGET_MODE: SUBCLASS,
        Key.RANDOM_FRACTION: 0.1,
        Key.CLASSES: [3],
        Key.SUB_CLASS: 3,
        Key.SUB_FRACTION: 0.1,
        Key.MISLABELED_FRACTION: 0.1,
        Key.RECIPE: "standard",
        Key.LABEL_NOISE: 0.0,
        Key.HOLDOUT: 0.2,
        Key.RATE_RULE: False,
        Key.METHODS: list(DEFAULT_METHODS),
        Key.GOLD_SEEDS: 3,
        Key.DEVICE: "auto",
        Key.QUICK: os.environ.get("TMU_DASHBOARD_PROFILE", "full") == "quick",
    }
    out = {**plain, **scenario_widgets(DEFAULT_SCENARIO), Key.SCENARIO: DEFAULT_SCENARIO}
    if "TMU_DASHBOARD_DATASET" in os.environ:
        out[Key.DATASET] = os.environ["TMU_DASHBOARD_DATASET"]
    return out


def init_state(state: State) -> None:
    """Fill in every missing setting and an empty selection."""
    for k, v in defaults().items():
        state.setdefault(k, v)
    state.setdefault(Key.SELECTION, [])
    state.setdefault(Key.MY_RUNS, [])
    if Key.VISITOR not in state:
        state[Key.VISITOR] = uuid.uuid4().hex
