"""The dashboard's service layer: everything the pages call, by concern.

* `state` — session-state keys (`Key`) and the settings' defaults;
* `data` — the pool, its one cached D / H / T split, class counts, images and thumbnails;
* `forget` — the ForgetSpec of the widgets, its check against the split, the selection;
* `embedding` — the embedding job (a `JobKind` registered here) and the selection's spread;
* `runs` — the RunConfig of the settings, the job backend, this session's job, finished runs;
* `results` — a finished run's views against the gold ensemble, attributions, exports.

Importable without Streamlit (pages pass `st.session_state` as `state`; tests pass a dict). It
never trains: training happens in `tmu.jobs` on the backend's worker.
"""

from .data import (
    DataInfo,
    data_info,
    data_uri,
    datasets,
    gallery,
    images,
    methods,
    models,
    pool,
    roles,
    thumbnail_table,
    to_uint8,
)
from .embedding import (
    CLUSTERED,
    EMBEDDING,
    embedding,
    embedding_config,
    embedding_task,
    selection_spread,
)
from .forget import (
    ForgetCheck,
    add_ids,
    check_forget,
    clear_selection,
    forget_captions,
    forget_spec,
    id_list_text,
    ids_from_selection,
    parse_id_list,
)
from .results import (
    compare_table,
    disagreement_ids,
    explain_samples,
    export_csv,
    export_html,
    export_json,
    gold_prediction,
    gold_right,
    load,
    predictor_arrays,
    quadrant_fractions,
    quadrant_ids,
    result_methods,
)
from .runs import (
    QUICK,
    backend,
    cancel_job,
    current_job,
    current_run,
    device_options,
    finished_runs,
    make_config,
    run_label,
    submit_run,
)
from .state import (
    DEFAULT_METHODS,
    FORGET_MODES,
    MISLABELED,
    POINT_AND_CLICK,
    Key,
    State,
    defaults,
    init_state,
)

__all__ = [
    "add_ids",
    "backend",
    "cancel_job",
    "check_forget",
    "clear_selection",
    "CLUSTERED",
    "compare_table",
    "current_job",
    "current_run",
    "data_info",
    "data_uri",
    "DataInfo",
    "datasets",
    "DEFAULT_METHODS",
    "defaults",
    "device_options",
    "disagreement_ids",
    "EMBEDDING",
    "embedding",
    "embedding_config",
    "embedding_task",
    "explain_samples",
    "export_csv",
    "export_html",
    "export_json",
    "finished_runs",
    "FORGET_MODES",
    "forget_captions",
    "forget_spec",
    "ForgetCheck",
    "gallery",
    "gold_prediction",
    "gold_right",
    "id_list_text",
    "ids_from_selection",
    "images",
    "init_state",
    "Key",
    "load",
    "make_config",
    "methods",
    "MISLABELED",
    "models",
    "parse_id_list",
    "POINT_AND_CLICK",
    "pool",
    "predictor_arrays",
    "quadrant_fractions",
    "quadrant_ids",
    "QUICK",
    "result_methods",
    "roles",
    "run_label",
    "selection_spread",
    "State",
    "submit_run",
    "thumbnail_table",
    "to_uint8",
]
