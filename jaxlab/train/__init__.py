"""Mesh and sharding rules, train state, the jitted train step, the trainer, checkpoints, metrics.

``default_config()`` returns the trainer's keys (mesh, optimizer, intervals, ...) with their defaults and a
comment each; experiment configs build on it.
"""

from jaxlab.train.checkpoint import CheckpointError, Checkpointer
from jaxlab.train.config import default_config
from jaxlab.train.mesh import DEFAULT_RULES, MESH_AXES, batch_sharding, make_mesh
from jaxlab.train.optim import make_optimizer, make_schedule
from jaxlab.train.step import TrainState, make_train_step
from jaxlab.train.trainer import RolloutContext, Task, Trainer, TrainResult, evaluate, train, validate_config

__all__ = [
    "CheckpointError", "Checkpointer", "default_config", "validate_config", "DEFAULT_RULES", "MESH_AXES",
    "batch_sharding", "make_mesh",
    "make_optimizer", "make_schedule", "TrainState", "make_train_step", "RolloutContext", "Task", "Trainer",
    "TrainResult", "evaluate", "train",
]
