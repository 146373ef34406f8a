"""Process-level JAX set-up for experiment binaries (called once at the top of main)."""

from __future__ import annotations

import os

import jax
from absl import logging

# Environment variables by which a cluster says "this is one process of a multi-process job"; with any of
# them present jax.distributed.initialize() can discover the coordinator by itself.
_MULTIHOST_HINTS = ("JAX_COORDINATOR_ADDRESS", "MEGASCALE_COORDINATOR_ADDRESS", "TPU_WORKER_HOSTNAMES")


def _is_multihost_env() -> bool:
  if any(os.environ.get(k) for k in _MULTIHOST_HINTS):
    hosts = os.environ.get("TPU_WORKER_HOSTNAMES", "")
    return "," in hosts or not hosts
  for key in ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE"):
    if int(os.environ.get(key, "1") or 1) > 1:
      return True
  return False


class _QuietLibraries:
  """Drops INFO-level records from orbax's modules (dozens of lines per checkpoint); warnings pass."""

  def filter(self, record) -> bool:
    return record.levelno > 20 or f"{os.sep}orbax{os.sep}" not in record.pathname


def quiet_libraries() -> None:
  """Keeps orbax's INFO records out of the log (absl's handler and the 'absl' Python logger, which a
  user's own logging.basicConfig(level=INFO) would show); idempotent."""
  import logging as py_logging  # pylint: disable=import-outside-toplevel
  for target in (logging.get_absl_handler(), py_logging.getLogger("absl")):
    if not any(isinstance(f, _QuietLibraries) for f in target.filters):
      target.addFilter(_QuietLibraries())


def distributed_kwargs() -> dict:
  """Arguments for jax.distributed.initialize from the environment.

  JAX reads ``JAX_COORDINATOR_ADDRESS`` itself and detects SLURM / TPU / MPI clusters; ``JAX_NUM_PROCESSES``
  and ``JAX_PROCESS_ID`` (set by ``python -m jaxlab.launch``) name the rest where no cluster does, and
  ``JAXLAB_HEARTBEAT_TIMEOUT`` (seconds) bounds how long the survivors of a dead process wait (JAX's default 100).
  """
  kwargs = {}
  for key, arg in (("JAX_NUM_PROCESSES", "num_processes"), ("JAX_PROCESS_ID", "process_id"),
                   ("JAXLAB_HEARTBEAT_TIMEOUT", "heartbeat_timeout_seconds")):
    if os.environ.get(key):
      try:
        kwargs[arg] = int(os.environ[key])
      except ValueError:
        raise ValueError(f"environment variable {key}={os.environ[key]!r} is not an integer") from None
  return kwargs


def initialize() -> None:
  """Multi-host start when the environment says so, partitionable RNG, one log line per device kind."""
  quiet_libraries()
  if _is_multihost_env() and not jax.distributed.is_initialized():
    if jax.config.jax_cpu_collectives_implementation in (None, "", "none"):
      jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU collectives across processes
    jax.distributed.initialize(**distributed_kwargs())
  jax.config.update("jax_threefry_partitionable", True)
  logging.info("JAX %s: process %d/%d, %d local / %d global devices (%s)", jax.__version__,
               jax.process_index(), jax.process_count(), jax.local_device_count(), jax.device_count(),
               jax.devices()[0].device_kind)
