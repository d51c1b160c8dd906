"""The one training engine (teacher, student baseline, KD, TFE-RDD, TSE-RDD, CWD/AT + RDD).

```python
from rdd.engine import TrainConfig, train
cfg = TrainConfig.from_dict({"out_dir": "outputs/baseline",        # ValueError names a bad key
                             "model": {"name": "lraspp_mobilenetv2"},
                             "data": {"dataset": "synthetic", "root": "outputs/data/synthetic"}})
metrics = train(cfg)                                 # under torchrun every rank calls it
```
See docs/DESIGN.md ("Training engine") for the config keys.
"""

from .checkpoint import (
    CheckpointError,
    ConfigMismatchWarning,
    check_config_hash,
    get_rng_state,
    load_checkpoint,
    save_checkpoint,
    set_rng_state,
)
from .config import (
    DataConfig,
    ExtraKDConfig,
    KDConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    RDDConfig,
    TeacherConfig,
    TrainConfig,
)
from .data import InfiniteLoader, SeededTrainSet, aug_seed
from .distributed import DistInfo, cleanup_distributed, init_distributed
from .objective import Objective
from .schedule import PolyWarmup, build_scheduler, rebase_scheduler
from .trainer import NonFiniteLossError, Trainer, train

__all__ = [
    "TrainConfig",
    "train",
    "Trainer",
    "NonFiniteLossError",
    "ModelConfig",
    "TeacherConfig",
    "DataConfig",
    "OptimConfig",
    "KDConfig",
    "ExtraKDConfig",
    "RDDConfig",
    "LossConfig",
    "save_checkpoint",
    "load_checkpoint",
    "CheckpointError",
    "check_config_hash",
    "get_rng_state",
    "set_rng_state",
    "ConfigMismatchWarning",
    "Objective",
    "PolyWarmup",
    "build_scheduler",
    "rebase_scheduler",
    "InfiniteLoader",
    "SeededTrainSet",
    "aug_seed",
    "DistInfo",
    "init_distributed",
    "cleanup_distributed",
]
