"""``scdnn demo``: the main job end to end on data that needs no network.

Trains SCDnn briefly on ../shared/data/sichuan-aerial when that folder is there (real aerial
imagery, CC BY 4.0), otherwise on a small generated dataset, scores the held-out test images
and prints the metrics table. The output folder is the demo's own and is replaced each run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .datasets.synthetic import write_synthetic_dataset
from .inference import evaluate
from .metrics import format_table
from .trainers.fit import TrainConfig, env_workers, train

SHARED_SICHUAN = Path("..") / "shared" / "data" / "sichuan-aerial"

# Budgets: a few minutes on 2 CPU cores. Real data: 256 px crops of the 1024 px images.
REAL = {"epochs": 8, "crops_per_image": 4, "image_size": 256, "batch_size": 8}
SYNTHETIC = {"epochs": 12, "crops_per_image": 2, "image_size": 96, "batch_size": 8}


def run_demo(data: str | None = None, out: str = "demo-output", epochs: int | None = None) -> None:
    out_dir = Path(out)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    if data is None and SHARED_SICHUAN.is_dir():
        data_dir, budget, what = SHARED_SICHUAN, REAL, "real data: ../shared/data/sichuan-aerial"
    elif data is not None:
        data_dir, budget, what = Path(data), REAL, f"your data: {data}"
    else:
        data_dir = write_synthetic_dataset(out_dir / "synthetic-data")
        budget, what = SYNTHETIC, "generated data (../shared/data/sichuan-aerial not found)"
    budget = {**budget, **({"epochs": epochs} if epochs else {})}
    print(f"scdnn demo: training SCDnn on {what}; {budget['epochs']} epochs")
    weights = train(TrainConfig(data=str(data_dir), out=str(out_dir / "run"), model="scdnn",
                                workers=env_workers(), **budget))
    metrics = evaluate(data_dir, out_dir / "evaluation", weights=str(weights))
    print(f"scored {metrics['images']} held-out test images ({metrics['scored']}) of {what}")
    print(format_table(metrics))
    print(f"outputs: {out_dir}/run (weights, log) and {out_dir}/evaluation (metrics.json)")
