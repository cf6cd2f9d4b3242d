"""Registry of the AMR datasets the papers use: classes, length, SNR grid, counts, files.

Every fact here comes from public loaders and generator scripts (radioML/dataset's
generate_RML2016.10a.py and generate_RML2016.04c.py, the Richardzhangxx/AMR-Benchmark
loaders) or from the DUSE paper (Sec. IV-A). Where no public source exists (Sig2019-12's
class list and file layout) the choice is ours and says so in ``notes``.
"""

from __future__ import annotations

import dataclasses

from amrjax.errors import ConfigError
from amrjax.registry import Registry

RML2016_PICKLE = 'rml2016_pickle'  # pickled dict {(mod, snr): float32 (n, 2, L)}
XYZ_HDF5 = 'xyz_hdf5'  # HDF5 with X (N, L, 2), Y (N, C) one-hot, Z (N, 1) SNR
XYZ_HDF5_OR_NPZ = 'xyz_hdf5_or_npz'  # as XYZ_HDF5, or the same arrays in an .npz

L1_NORM = 'l1'  # each vector divided by sum_t |x_t| (RML2016 generator scripts)
UNIT_POWER = 'unit_power'  # each vector scaled to mean |x_t|^2 = 1


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """What a dataset is: the facts a loader, a splitter and the generator need.

  Attributes:
    name: registry key, e.g. ``'rml2016.10a'``.
    classes: class names in their true label-index order.
    length: samples per vector L; vectors are stored as float32 (N, 2, L), I then Q.
    snrs: SNR grid in dB, ascending.
    count_per_cell: vectors per (class, SNR) cell; an upper bound when
      ``count_varies`` is true.
    count_varies: the real file has fewer vectors in some cells (RML2016.04c).
    train_fraction: train share of every (class, SNR) cell in the papers' split.
    file_names: accepted file names in ``--data_dir``, preferred first.
    file_format: one of ``RML2016_PICKLE``, ``XYZ_HDF5``, ``XYZ_HDF5_OR_NPZ``.
    stored_names: class names as the file spells them, in ``classes`` order
      (RML2016 pickles key by these).
    normalisation: how each vector is scaled in the real file (``L1_NORM`` or
      ``UNIT_POWER``); the synthetic stand-in does the same.
    notes: provenance and the choices made where sources are silent.
  """

  name: str
  classes: tuple[str, ...]
  length: int
  snrs: tuple[int, ...]
  count_per_cell: int
  train_fraction: float
  file_names: tuple[str, ...]
  file_format: str
  normalisation: str
  stored_names: tuple[str, ...] = ()
  count_varies: bool = False
  notes: str = ''

  @property
  def num_classes(self) -> int:
    return len(self.classes)

  @property
  def file_name(self) -> str:
    return self.file_names[0]

  @property
  def names_in_file(self) -> tuple[str, ...]:
    return self.stored_names or self.classes

  @property
  def total_count(self) -> int:
    """Vectors in the full file (an upper bound when ``count_varies``)."""
    return self.num_classes * len(self.snrs) * self.count_per_cell


def _grid(lo: int, hi: int, step: int = 2) -> tuple[int, ...]:
  return tuple(range(lo, hi + 1, step))


_RML2016_SORTED = ('8PSK', 'AM-DSB', 'AM-SSB', 'BPSK', 'CPFSK', 'GFSK', 'PAM4', 'QAM16',
                   'QAM64', 'QPSK', 'WBFM')

_SPECS = (
    DatasetSpec(
        name='rml2016.10a',
        classes=_RML2016_SORTED,
        length=128,
        snrs=_grid(-20, 18),
        count_per_cell=1000,
        train_fraction=0.8,
        file_names=('RML2016.10a_dict.pkl',),
        file_format=RML2016_PICKLE,
        normalisation=L1_NORM,
        notes='220,000 vectors; index order = sorted mod names (AMR-Benchmark loaders); '
        'split 8:2 (DUSE Sec. IV-A).'),
    DatasetSpec(
        name='rml2016.10b',
        classes=tuple(c for c in _RML2016_SORTED if c != 'AM-SSB'),
        length=128,
        snrs=_grid(-20, 18),
        count_per_cell=6000,
        train_fraction=0.8,
        file_names=('RML2016.10b.dat',),
        file_format=RML2016_PICKLE,
        normalisation=L1_NORM,
        notes='1.2 M vectors, 10a without AM-SSB (AMR-Benchmark loader); split 8:2 by '
        'analogy with 10a (no paper here uses 10b).'),
    DatasetSpec(
        name='rml2016.04c',
        classes=_RML2016_SORTED,
        length=128,
        snrs=_grid(-20, 18),
        count_per_cell=1000,
        count_varies=True,
        train_fraction=0.8,
        file_names=('2016.04C.multisnr.pkl',),
        file_format=RML2016_PICKLE,
        normalisation=L1_NORM,
        notes='windows of 128, stride 64, from one capture per key, at most 1000 per key '
        '(generate_RML2016.04c.py); split 8:2 by analogy with 10a.'),
    DatasetSpec(
        name='rml2018.01a',
        classes=('OOK', '4ASK', '8ASK', 'BPSK', 'QPSK', '8PSK', '16PSK', '32PSK', '16APSK',
                 '32APSK', '64APSK', '128APSK', '16QAM', '32QAM', '64QAM', '128QAM', '256QAM',
                 'AM-SSB-WC', 'AM-SSB-SC', 'AM-DSB-WC', 'AM-DSB-SC', 'FM', 'GMSK', 'OQPSK'),
        length=1024,
        snrs=_grid(-20, 30),
        count_per_cell=4096,
        train_fraction=0.8,
        file_names=('GOLD_XYZ_OSC.0001_1024.hdf5',),
        file_format=XYZ_HDF5,
        normalisation=UNIT_POWER,
        notes='2,555,904 vectors, rows ordered by class then SNR; the one-hot order above is '
        'the true one, the shipped classes.txt is wrong (see '
        'github.com/radioML/dataset/issues/25); split 8:2 '
        '(DUSE Sec. IV-A). Per-vector scaling of the real file is not documented: unit power '
        'is our choice for the stand-in.'),
    DatasetSpec(
        name='sig2019',
        classes=('BPSK', 'QPSK', '8PSK', 'OQPSK', '2FSK', '4FSK', '8FSK', '16QAM', '32QAM',
                 '64QAM', '4PAM', '8PAM'),
        length=512,
        snrs=_grid(-20, 30),
        count_per_cell=1500,
        train_fraction=2 / 3,
        file_names=('sig2019-12.hdf5', 'sig2019-12.npz'),
        file_format=XYZ_HDF5_OR_NPZ,
        normalisation=UNIT_POWER,
        notes='Sig2019-12 (SigNet, Chen et al. 2021): 468,000 vectors, split 2:1 (DUSE Sec. '
        'IV-A). No public file, loader or class list exists: the class list above is our '
        'documented choice of 12 digital modulations, the file is X/Y/Z in the RML2018 '
        'convention (HDF5 or NPZ) with an optional `classes` array of names.'),
)

_REGISTRY: Registry[DatasetSpec] = Registry('dataset')
_ALIASES = {
    'rml2016.10a': ('rml2016a', '2016.10a'),
    'rml2016.10b': ('rml2016b', '2016.10b'),
    'rml2016.04c': ('rml2016c', '2016.04c'),
    'rml2018.01a': ('rml2018', 'rml2018a', '2018.01a'),
    'sig2019': ('sig2019-12', 'sig2019.12'),
}
for _spec in _SPECS:
  _REGISTRY.register(_spec.name, _spec, _ALIASES.get(_spec.name, ()))


def names() -> tuple[str, ...]:
  """Registered dataset names."""
  return _REGISTRY.names()


def get_spec(name: str) -> DatasetSpec:
  """The spec registered under ``name`` (case-insensitive, common aliases accepted)."""
  return _REGISTRY.get(name)


def register(spec: DatasetSpec) -> DatasetSpec:
  """Adds a spec (e.g. a custom or shrunken dataset) to the registry and returns it."""
  if spec.file_format not in (RML2016_PICKLE, XYZ_HDF5, XYZ_HDF5_OR_NPZ):
    raise ConfigError(f'unknown file format {spec.file_format!r} in spec {spec.name!r}')
  if spec.normalisation not in (L1_NORM, UNIT_POWER):
    raise ConfigError(f'unknown normalisation {spec.normalisation!r} in spec {spec.name!r}')
  if spec.stored_names and len(spec.stored_names) != len(spec.classes):
    raise ConfigError(f'spec {spec.name!r}: stored_names must match classes one to one')
  return _REGISTRY.register(spec.name, spec)
