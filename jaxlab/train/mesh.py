"""Device mesh and logical sharding rules.

jaxlab meshes have three named axes, always in this order:

* ``data``   – pure data parallelism (batch split, parameters replicated);
* ``fsdp``   – fully-sharded data parallelism (batch split *and* parameters split along their
  ``embed`` dimension);
* ``tensor`` – tensor (model) parallelism over ``heads`` / ``mlp`` / ``vocab``.

Models name their parameter and activation axes with logical names ('batch', 'length', 'embed',
'mlp', 'heads', 'kv', 'vocab'); a small rule table maps those names onto mesh axes. The table lives
in the config (``config.sharding_rules``), so a run on a pod differs from a CPU run only by
``config.mesh`` and, if wanted, the rules.

Axis types are set explicitly to ``Auto``: ``jax.make_mesh`` defaults to ``Explicit`` axes, under
which flax's logical-partitioning helpers do not apply.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

MESH_AXES = ("data", "fsdp", "tensor")

# Logical axis name -> mesh axis (or tuple of mesh axes, or None = replicated). Flax applies rules in
# order and never uses one mesh axis twice in a spec, so 'embed' falls back to replicated on activations
# whose 'batch' already took 'fsdp'.
DEFAULT_RULES: tuple[tuple[str, str | tuple[str, ...] | None], ...] = (
    ("batch", ("data", "fsdp")),
    ("length", None),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("kv", None),
    ("vocab", "tensor"),
)

BATCH_AXES = ("data", "fsdp")


def resolve_mesh_shape(mesh_config: Mapping[str, int], num_devices: int) -> tuple[int, int, int]:
  """Resolves ``{'data': d, 'fsdp': f, 'tensor': t}`` (one entry may be -1 = "the rest").

  Raises:
    ValueError: naming ``config.mesh`` when an axis is unknown, more than one axis is -1, or the
      product does not equal the number of devices.
  """
  unknown = set(mesh_config) - set(MESH_AXES)
  if unknown:
    raise ValueError(f"config.mesh has unknown axes {sorted(unknown)}; expected a subset of {MESH_AXES}")
  sizes = [int(mesh_config.get(name, 1)) for name in MESH_AXES]
  free = [i for i, s in enumerate(sizes) if s == -1]
  if len(free) > 1:
    raise ValueError(f"config.mesh: at most one axis may be -1, got {dict(zip(MESH_AXES, sizes))}")
  if any(s == 0 or s < -1 for s in sizes):
    raise ValueError(f"config.mesh: axis sizes must be positive (or -1), got {dict(zip(MESH_AXES, sizes))}")
  fixed = math.prod(s for s in sizes if s != -1)
  if free:
    if num_devices % fixed:
      raise ValueError(
          f"config.mesh {dict(zip(MESH_AXES, sizes))}: the fixed axes multiply to {fixed}, which does not "
          f"divide the {num_devices} available devices")
    sizes[free[0]] = num_devices // fixed
  elif fixed != num_devices:
    raise ValueError(
        f"config.mesh {dict(zip(MESH_AXES, sizes))} needs {fixed} devices but {num_devices} are available "
        f"(use -1 for one axis to take the rest)")
  return tuple(sizes)  # type: ignore[return-value]


def make_mesh(mesh_config: Mapping[str, int], devices: Sequence[jax.Device] | None = None) -> Mesh:
  """Builds a ('data', 'fsdp', 'tensor') mesh with Auto axis types from ``config.mesh``."""
  devices = list(jax.devices() if devices is None else devices)
  shape = resolve_mesh_shape(mesh_config, len(devices))
  return jax.make_mesh(shape, MESH_AXES, axis_types=(AxisType.Auto,) * len(MESH_AXES), devices=devices)


def rules_from_config(rules: Sequence[Sequence] | None) -> tuple[tuple[str, str | tuple[str, ...] | None], ...]:
  """Normalises a config's rule table (lists from ml_collections) into flax's tuple form."""
  if rules is None:
    return DEFAULT_RULES
  out = []
  for entry in rules:
    if len(entry) != 2:
      raise ValueError(f"config.sharding_rules: each rule must be (logical_name, mesh_axes), got {entry!r}")
    name, axes = entry
    if isinstance(axes, (list, tuple)):
      axes = tuple(axes)
      bad = [a for a in axes if a not in MESH_AXES]
    else:
      bad = [axes] if axes is not None and axes not in MESH_AXES else []
    if bad:
      raise ValueError(f"config.sharding_rules: rule for {name!r} names unknown mesh axes {bad}; "
                       f"mesh axes are {MESH_AXES}")
    out.append((str(name), axes))
  return tuple(out)


def data_parallel_size(mesh: Mesh) -> int:
  """Number of ways the batch is split (data × fsdp)."""
  return int(np.prod([mesh.shape[a] for a in BATCH_AXES]))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Sharding of a batch array: leading dim over ('data', 'fsdp'), the rest replicated."""
  return NamedSharding(mesh, PartitionSpec(BATCH_AXES))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def check_batch_divisible(global_batch_size: int, mesh: Mesh, num_microbatches: int = 1,
                          name: str = "config.batch_size") -> None:
  """Raises a ValueError naming the config key when the batch cannot be split over the mesh."""
  dp = data_parallel_size(mesh)
  if global_batch_size <= 0:
    raise ValueError(f"{name}={global_batch_size} must be positive")
  if global_batch_size % num_microbatches:
    raise ValueError(f"{name}={global_batch_size} is not divisible by config.num_microbatches={num_microbatches}")
  micro = global_batch_size // num_microbatches
  if micro % dp:
    raise ValueError(
        f"{name}={global_batch_size} (micro-batch {micro} with {num_microbatches} micro-batches) is not "
        f"divisible by the data-parallel size {dp} (mesh data={mesh.shape['data']} × fsdp={mesh.shape['fsdp']})")
  if global_batch_size % jax.process_count():
    raise ValueError(f"{name}={global_batch_size} is not divisible by the {jax.process_count()} processes")
