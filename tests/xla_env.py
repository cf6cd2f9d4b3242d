"""XLA settings of the test processes and of the subprocesses tests start (no JAX import, so
``conftest`` can read it before JAX starts).

``pytest -n 2`` runs two workers on a 2-core machine: each worker's XLA computes on one
thread, so the two do not fight over the cores. ``python -m pytest -q -n 2
tests/models/test_batchnorm_eval.py`` without a compilation cache took 139 s this way and
156 s with XLA's default thread pool, on a 2-core AMD EPYC (AVX-512). The driver
subprocesses a test starts get the same setting through ``xla_flags``.
"""

ONE_COMPUTE_THREAD = '--xla_cpu_multi_thread_eigen=false'


def xla_flags(devices: int | None = None) -> str:
  """``XLA_FLAGS`` with one compute thread and ``devices`` fake CPU devices (None: XLA's
  default, one device)."""
  flags = [ONE_COMPUTE_THREAD]
  if devices is not None:
    flags.append(f'--xla_force_host_platform_device_count={devices}')
  return ' '.join(flags)
