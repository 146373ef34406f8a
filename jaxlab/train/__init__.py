"""Mesh and sharding rules, train state, the jitted train step, the trainer, checkpoints, metrics."""

from jaxlab.train.checkpoint import CheckpointError, Checkpointer
from jaxlab.train.mesh import DEFAULT_RULES, MESH_AXES, batch_sharding, make_mesh
from jaxlab.train.optim import make_optimizer, make_schedule
from jaxlab.train.step import TrainState, make_train_step
from jaxlab.train.trainer import RolloutContext, Task, Trainer, TrainResult, evaluate, train

__all__ = [
    "CheckpointError", "Checkpointer", "DEFAULT_RULES", "MESH_AXES", "batch_sharding", "make_mesh",
    "make_optimizer", "make_schedule", "TrainState", "make_train_step", "RolloutContext", "Task", "Trainer",
    "TrainResult", "evaluate", "train",
]
