"""Development only (seed 0): how many epochs without weight decay an original needs to memorise
its wrong labels, for the `memorise` recipe (docs/benchmarks.md §12).

    python scripts/dev_memorise.py mnist5k mislabeled:0.1 0 20/5e-4/0.05 80/0/0.05

Each spec is EPOCHS/WEIGHT_DECAY/LR; one line of JSON per spec: seconds, accuracy on D, on D_f and
on the noisy samples of D against the labels trained on, and on T.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tmu.config import RunConfig, from_dict  # noqa: E402
from tmu.models import apply_recipe  # noqa: E402
from tmu.pipeline import load_data  # noqa: E402


def main() -> int:
    dataset, forget, noise, *specs = sys.argv[1:]
    for spec in specs:
        epochs, wd, lr = spec.split("/")
        train = {"epochs": int(epochs), "weight_decay": float(wd), "lr": float(lr)}
        values = {"dataset": dataset, "forget": forget, "seed": 0, "train": train}
        cfg = from_dict(RunConfig, apply_recipe({**values, "split": {"label_noise": float(noise)}}))
        data = load_data(cfg)
        start = time.time()
        model = data.scratch(data.splits.train, cfg.train, 0, lambda f: None)
        s = data.splits

        def acc(ids):
            right = data.predict(model, ids).argmax(1) == data.labels[ids]
            return round(float(right.mean()), 3) if len(ids) else None

        noisy = s.train[data.labels[s.train] != data.true_labels[s.train]]
        row = {"spec": spec, "sec": round(time.time() - start, 1), "D": acc(s.train)}
        row |= {"D_f": acc(s.forget), "noisy_D": acc(noisy), "test": acc(s.test)}
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
