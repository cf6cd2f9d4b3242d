"""Synthetic RadioML-like signals: a stand-in for any dataset spec, in its real file format.

The generator is vectorised NumPy over all vectors of one (class, SNR) cell. Each vector is

1. a modulated complex baseband at ``samples_per_symbol`` samples per symbol:
   - linear modulations (PSK, QAM, APSK, PAM/ASK, OOK, OQPSK): i.i.d. symbols on an impulse
     train shaped by a root-raised-cosine filter (roll-off drawn per vector);
   - continuous-phase FSK (CPFSK, GFSK, GMSK, M-FSK): frequency pulses, Gaussian filtered
     for GFSK/GMSK, integrated to phase;
   - analog AM-DSB, AM-SSB (with or without carrier) and FM from a band-limited random
     message whose level ("loudness") is drawn per vector; a fraction of the vectors fall
     in a pause of the speech the real files modulate and carry the background level only:
     AM-DSB (with carrier) and FM then leave nothing but the carrier, which is why they are
     confused at any SNR in real data (a vector is far shorter than a pause, so each is
     either in speech or in a pause);
2. passed through a channel: a static multipath channel (Rician first tap, exponential
   power-delay profile), a fractional timing offset, a carrier frequency offset and a
   carrier phase offset;
3. given white Gaussian noise at the cell's SNR (measured against the vector's own signal
   power over its L samples, in the full sampled band);
4. scaled as the real file scales it (``DatasetSpec.normalisation``).

All filtering (pulse shaping, Gaussian filter, multipath, fractional delay, message
band-limiting) is done in the frequency domain on a guarded block that is longer than the
vector, so the circular edges are cut away.

Every cell draws from its own ``numpy.random.Generator`` seeded by (seed, class, SNR,
chunk), so a file is the same whatever order or chunking produced it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator

import numpy as np

from amrjax.data import specs as specs_lib
from amrjax.errors import ConfigError

GENERATOR_VERSION = 2
"""Bumped whenever the generator's output changes, so cached stand-ins are rebuilt."""


@dataclasses.dataclass(frozen=True)
class ChannelProfile:
  """Parameters of the generator; one profile per dataset (see ``PROFILES``).

  Frequencies are in cycles per sample, delays in samples, levels in dB.
  """

  samples_per_symbol: int = 8
  rolloff: tuple[float, float] = (0.25, 0.45)  # RRC roll-off, drawn uniformly per vector
  cfo_std: float = 0.0004  # carrier frequency offset ~ N(0, cfo_std), clipped at 3 std
  multipath_taps: int = 4  # taps at delays 0, 1, ..., taps-1 samples
  delay_decay: float = 0.8  # exponential power-delay profile, power ~ exp(-delay / decay)
  rician_k_db: tuple[float, float] = (0.0, 12.0)  # first-tap K factor, U(lo, hi) in dB
  message_cutoff: tuple[float, float] = (0.01, 0.06)  # analog message bandwidth
  loudness_db: tuple[float, float] = (-30.0, 0.0)  # analog message level, U(lo, hi)
  # Share of analog vectors in a speech pause, and the message level there. We assume read
  # speech is active about 70 % of the time; a pause holds background noise far below it.
  # Version 1 had no pauses: its quietest message (-30 dB) still swung an FM carrier's phase
  # by about 0.7 rad over 128 samples, and one hand-made feature (phase wander against
  # envelope wander) told WBFM from AM-DSB for 98 % of vectors at 18 dB, 84 % with pauses
  # (python -m benchmarks.analog_separability [--pause_fraction=0]).
  pause_fraction: float = 0.3
  pause_level_db: float = -60.0
  am_depth: float = 0.6  # AM modulation depth at 0 dB loudness (message has unit RMS)
  fm_deviation: float = 0.08  # FM frequency deviation per unit message at 0 dB loudness
  cpfsk_index: float = 0.5  # modulation index of binary CPFSK / GFSK / GMSK
  gfsk_bt: float = 0.35  # GFSK Gaussian filter bandwidth-time product
  gmsk_bt: float = 0.3
  mfsk_index: float = 1.0  # tone spacing (modulation index) of 2/4/8-FSK


# The residual carrier offset scales with the vector length: one standard deviation turns
# the constellation by about 18 degrees over a vector (GNU Radio's channel model in the
# RML2016 scripts lets the offset wander slowly from zero, so most vectors see little).
PROFILES: dict[str, ChannelProfile] = {
    'rml2016.10a': ChannelProfile(),
    'rml2016.10b': ChannelProfile(),
    'rml2016.04c': ChannelProfile(cfo_std=0.0002, multipath_taps=3, rician_k_db=(3.0, 15.0)),
    'rml2018.01a': ChannelProfile(cfo_std=0.00005),
    'sig2019': ChannelProfile(cfo_std=0.0001),
}


def profile_for(spec: specs_lib.DatasetSpec) -> ChannelProfile:
  return PROFILES.get(spec.name, ChannelProfile())


# --- constellations --------------------------------------------------------------------


def _unit_energy(points: np.ndarray) -> np.ndarray:
  points = np.asarray(points, np.complex128)
  return points / np.sqrt(np.mean(np.abs(points)**2))


def psk(order: int, offset: float = 0.0) -> np.ndarray:
  return np.exp(1j * (2 * np.pi * np.arange(order) / order + offset))


def pam(order: int) -> np.ndarray:
  return _unit_energy(np.arange(order) * 2.0 - (order - 1))


def qam(order: int) -> np.ndarray:
  """Square QAM for even powers of two, cross QAM (corners removed) for 32 and 128."""
  side = int(round(math.sqrt(order)))
  if side * side == order:
    levels = np.arange(side) * 2.0 - (side - 1)
    return _unit_energy((levels[:, None] + 1j * levels[None, :]).ravel())
  # Cross constellation: the smallest square grid with `order` points after cutting corners.
  side = int(math.ceil(math.sqrt(order)))
  side += side % 2
  levels = np.arange(side) * 2.0 - (side - 1)
  grid = (levels[:, None] + 1j * levels[None, :]).ravel()
  corner = (side * side - order) // 4
  cut = int(round(math.sqrt(corner)))
  bound = (side - 1) - 2 * (cut - 1)  # points with both |re|, |im| >= bound are corners
  keep = ~((np.abs(grid.real) >= bound) & (np.abs(grid.imag) >= bound))
  return _unit_energy(grid[keep])


def apsk(rings: tuple[int, ...], radii: tuple[float, ...]) -> np.ndarray:
  """Amplitude-phase shift keying: ``rings[i]`` points on radius ``radii[i]`` (DVB-S2 style)."""
  points = [r * np.exp(1j * (2 * np.pi * np.arange(n) / n + np.pi / n))
            for n, r in zip(rings, radii)]
  return _unit_energy(np.concatenate(points))


# Ring sizes follow DVB-S2/S2X; radii ratios are typical values from those standards.
_APSK = {
    '16APSK': ((4, 12), (1.0, 2.7)),
    '32APSK': ((4, 12, 16), (1.0, 2.64, 4.64)),
    '64APSK': ((4, 12, 20, 28), (1.0, 2.4, 4.3, 7.0)),
    '128APSK': ((16, 16, 16, 16, 16, 16, 16, 16), (1.0, 1.7, 2.4, 3.0, 3.6, 4.2, 4.8, 5.4)),
}

_LINEAR = {
    'BPSK': psk(2),
    'QPSK': psk(4, np.pi / 4),
    '8PSK': psk(8),
    '16PSK': psk(16),
    '32PSK': psk(32),
    '16QAM': qam(16),
    '32QAM': qam(32),
    '64QAM': qam(64),
    '128QAM': qam(128),
    '256QAM': qam(256),
    '4PAM': pam(4),
    '8PAM': pam(8),
    '4ASK': pam(4),
    '8ASK': pam(8),
    'OOK': _unit_energy(np.array([0.0, 1.0])),
    **{name: apsk(*args) for name, args in _APSK.items()},
}
_OFFSET_LINEAR = {'OQPSK'}  # QPSK with Q delayed by half a symbol
_CPM = {'CPFSK', 'GFSK', 'GMSK', '2FSK', '4FSK', '8FSK'}
_ANALOG = {'AM-DSB-WC', 'AM-DSB-SC', 'AM-SSB-WC', 'AM-SSB-SC', 'FM'}
_ALIASES = {
    'QAM16': '16QAM', 'QAM64': '64QAM', 'PAM4': '4PAM', 'AM-DSB': 'AM-DSB-WC',
    'AM-SSB': 'AM-SSB-SC', 'WBFM': 'FM',
}


def modulation_names() -> tuple[str, ...]:
  """Every modulation the generator knows (aliases such as QAM16, WBFM included)."""
  return tuple(sorted({*_LINEAR, *_OFFSET_LINEAR, *_CPM, *_ANALOG, *_ALIASES}))


def canonical_modulation(name: str) -> str:
  canonical = _ALIASES.get(name, name)
  if canonical not in {*_LINEAR, *_OFFSET_LINEAR, *_CPM, *_ANALOG}:
    raise ConfigError(f'the synthetic generator has no modulation {name!r}; '
                      f'known: {", ".join(modulation_names())}')
  return canonical


# --- frequency-domain building blocks --------------------------------------------------


def _freqs(n: int) -> np.ndarray:
  return np.fft.fftfreq(n)


def _rrc_response(freqs: np.ndarray, sps: int, rolloff: np.ndarray) -> np.ndarray:
  """Root-raised-cosine magnitude response, (n_vec, n_freq); ``rolloff`` is (n_vec,)."""
  f = np.abs(freqs)[None, :] * sps  # in units of the symbol rate
  beta = rolloff[:, None]
  lo, hi = (1 - beta) / 2, (1 + beta) / 2
  taper = np.sqrt(0.5 * (1 + np.cos(np.pi / beta * (f - lo))))
  return np.where(f <= lo, 1.0, np.where(f <= hi, taper, 0.0))


def _gaussian_response(freqs: np.ndarray, bandwidth: float) -> np.ndarray:
  """Gaussian low-pass with 3 dB bandwidth ``bandwidth`` (cycles/sample)."""
  return np.exp(-np.log(2) / 2 * (freqs / bandwidth)**2)


def _channel_response(freqs: np.ndarray, rng: np.random.Generator, n: int,
                      profile: ChannelProfile) -> np.ndarray:
  """Multipath + fractional timing offset, (n, n_freq), unit average power gain."""
  taps = profile.multipath_taps
  delays = np.arange(taps)
  power = np.exp(-delays / profile.delay_decay)
  power /= power.sum()
  k_db = rng.uniform(*profile.rician_k_db, size=n)
  k_lin = 10**(k_db / 10)
  gains = (rng.standard_normal((n, taps)) + 1j * rng.standard_normal((n, taps))) / np.sqrt(2)
  gains *= np.sqrt(power)[None, :]
  # Rician first tap: line of sight with power K/(K+1) of that tap, scatter the rest.
  los = np.exp(1j * rng.uniform(0, 2 * np.pi, size=n))
  gains[:, 0] = (np.sqrt(power[0]) * (np.sqrt(k_lin / (k_lin + 1)) * los) +
                 gains[:, 0] * np.sqrt(1 / (k_lin + 1)))
  response = gains @ np.exp(-2j * np.pi * delays[:, None] * freqs[None, :])
  delay = rng.uniform(0.0, 1.0, size=n)  # fractional timing offset, samples
  response *= np.exp(-2j * np.pi * delay[:, None] * freqs[None, :])
  return response


def _impulse_train(symbols: np.ndarray, sps: int, n: int, start: np.ndarray,
                   offset: int = 0) -> np.ndarray:
  """Places ``symbols`` (n_vec, n_sym) every ``sps`` samples from ``start + offset``."""
  n_vec, n_sym = symbols.shape
  train = np.zeros((n_vec, n), np.complex128)
  pos = start[:, None] + offset + sps * np.arange(n_sym)[None, :]
  ok = pos < n
  rows = np.broadcast_to(np.arange(n_vec)[:, None], pos.shape)
  train[rows[ok], pos[ok]] = symbols[ok]
  return train


# --- modulators: each returns the *spectrum* of a guarded complex baseband block ------------


def _linear_spectrum(name, rng, n_vec, n, profile, freqs):
  sps = profile.samples_per_symbol
  n_sym = n // sps + 1
  start = rng.integers(0, sps, size=n_vec)  # symbol timing phase
  if name in _OFFSET_LINEAR:
    constellation = psk(4, np.pi / 4)
    sym = constellation[rng.integers(0, 4, size=(n_vec, n_sym))]
    train = (_impulse_train(sym.real + 0j, sps, n, start) +
             1j * _impulse_train(sym.imag + 0j, sps, n, start, offset=sps // 2))
  else:
    constellation = _LINEAR[name]
    sym = constellation[rng.integers(0, len(constellation), size=(n_vec, n_sym))]
    train = _impulse_train(sym, sps, n, start)
  rolloff = rng.uniform(*profile.rolloff, size=n_vec)
  return np.fft.fft(train, axis=1) * _rrc_response(freqs, sps, rolloff)


def _cpm_spectrum(name, rng, n_vec, n, profile, freqs):
  sps = profile.samples_per_symbol
  order = {'2FSK': 2, '4FSK': 4, '8FSK': 8}.get(name, 2)
  index = profile.mfsk_index if name.endswith('FSK') and name[0].isdigit() else (
      profile.cpfsk_index)
  bt = {'GFSK': profile.gfsk_bt, 'GMSK': profile.gmsk_bt}.get(name)
  n_sym = n // sps + 2
  levels = 2 * rng.integers(0, order, size=(n_vec, n_sym)) - (order - 1)
  start = rng.integers(0, sps, size=n_vec)
  nrz = np.repeat(levels.astype(np.float64), sps, axis=1)
  rows = np.arange(n_vec)[:, None]
  nrz = nrz[rows, start[:, None] + np.arange(n)[None, :]]
  if bt is not None:  # Gaussian frequency pulse: filter the NRZ frequency sequence
    nrz = np.fft.ifft(np.fft.fft(nrz, axis=1) * _gaussian_response(freqs, bt / sps),
                      axis=1).real
  # Instantaneous frequency h * a / (2T) cycles/sample, integrated to phase.
  phase = np.cumsum(np.pi * index / sps * nrz, axis=1)
  phase += rng.uniform(0, 2 * np.pi, size=(n_vec, 1))
  return np.fft.fft(np.exp(1j * phase), axis=1)


def _message(rng, n_vec, n, profile, freqs):
  """Band-limited Gaussian message with unit RMS, times a per-vector loudness (the pause
  level for a ``pause_fraction`` of the vectors)."""
  white = rng.standard_normal((n_vec, n))
  cutoff = rng.uniform(*profile.message_cutoff, size=(n_vec, 1))
  spectrum = np.fft.fft(white, axis=1) * (np.abs(freqs)[None, :] <= cutoff)
  msg = np.fft.ifft(spectrum, axis=1).real
  msg /= np.sqrt(np.mean(msg**2, axis=1, keepdims=True)) + 1e-12
  level_db = rng.uniform(*profile.loudness_db, size=(n_vec, 1))
  paused = rng.random((n_vec, 1)) < profile.pause_fraction
  return msg * 10**(np.where(paused, profile.pause_level_db, level_db) / 20)


def _analog_spectrum(name, rng, n_vec, n, profile, freqs):
  msg = _message(rng, n_vec, n, profile, freqs)
  if name == 'FM':
    phase = np.cumsum(2 * np.pi * profile.fm_deviation * msg, axis=1)
    base = np.exp(1j * phase)
  else:
    if name.startswith('AM-SSB'):  # analytic message: upper sideband only
      spec = np.fft.fft(msg, axis=1)
      spec *= np.where(freqs > 0, 2.0, np.where(freqs == 0, 1.0, 0.0))[None, :]
      msg = np.fft.ifft(spec, axis=1)
    if name.endswith('-WC'):
      base = 1.0 + profile.am_depth * msg
    else:
      base = msg + 0j
  return np.fft.fft(base, axis=1)


def _guarded_length(length: int, sps: int) -> tuple[int, int]:
  """Block length (a multiple of 64) and the offset of the kept window within it."""
  guard = 4 * sps + 16
  total = int(math.ceil((length + 2 * guard) / 64) * 64)
  return total, (total - length) // 2


# --- cells, datasets, files --------------------------------------------------------------


def synthesize(modulation: str, snr_db, length: int, rng: np.random.Generator, *,
               count: int | None = None, profile: ChannelProfile = ChannelProfile(),
               normalisation: str = specs_lib.UNIT_POWER) -> np.ndarray:
  """Vectors of one modulation through the channel, float32 (n, 2, length), I then Q.

  Args:
    modulation: a name from :func:`modulation_names`.
    snr_db: scalar or (n,) SNR in dB, signal power over noise power in the sampled band.
    length: samples per vector.
    rng: the random generator to draw from.
    count: n; required when ``snr_db`` is a scalar.
    profile: channel and modulation parameters.
    normalisation: ``'l1'`` (divide by sum |x|) or ``'unit_power'`` (mean |x|^2 = 1).
  """
  name = canonical_modulation(modulation)
  snr_db = np.asarray(snr_db, np.float64)
  if snr_db.ndim == 0:
    if count is None:
      raise ConfigError('synthesize: give count when snr_db is a scalar')
    snr_db = np.full(count, float(snr_db))
  n_vec = snr_db.shape[0]
  n, keep = _guarded_length(length, profile.samples_per_symbol)
  freqs = _freqs(n)
  if name in _LINEAR or name in _OFFSET_LINEAR:
    spectrum = _linear_spectrum(name, rng, n_vec, n, profile, freqs)
  elif name in _CPM:
    spectrum = _cpm_spectrum(name, rng, n_vec, n, profile, freqs)
  else:
    spectrum = _analog_spectrum(name, rng, n_vec, n, profile, freqs)
  spectrum *= _channel_response(freqs, rng, n_vec, profile)
  sig = np.fft.ifft(spectrum, axis=1)[:, keep:keep + length]
  t = np.arange(length)[None, :]
  cfo = np.clip(rng.normal(0.0, profile.cfo_std, size=(n_vec, 1)), -3 * profile.cfo_std,
                3 * profile.cfo_std)
  phase0 = rng.uniform(0, 2 * np.pi, size=(n_vec, 1))
  sig *= np.exp(1j * (2 * np.pi * cfo * t + phase0))
  power = np.mean(np.abs(sig)**2, axis=1, keepdims=True)
  noise_power = power / 10**(snr_db[:, None] / 10)
  noise = rng.standard_normal((n_vec, length)) + 1j * rng.standard_normal((n_vec, length))
  sig = sig + noise * np.sqrt(noise_power / 2)
  if normalisation == specs_lib.L1_NORM:
    sig /= np.sum(np.abs(sig), axis=1, keepdims=True)
  elif normalisation == specs_lib.UNIT_POWER:
    sig /= np.sqrt(np.mean(np.abs(sig)**2, axis=1, keepdims=True))
  else:
    raise ConfigError(f'unknown normalisation {normalisation!r}')
  return np.stack([sig.real, sig.imag], axis=1).astype(np.float32)


def cell_counts(spec: specs_lib.DatasetSpec, count_per_cell: int | None = None,
                seed: int = 0) -> np.ndarray:
  """Vectors per (class, SNR) cell, int (C, S); below the maximum only where counts vary."""
  count = spec.count_per_cell if count_per_cell is None else int(count_per_cell)
  if count < 1:
    raise ConfigError(f'count_per_cell must be at least 1, got {count}')
  counts = np.full((spec.num_classes, len(spec.snrs)), count, np.int64)
  if spec.count_varies:  # like RML2016.04c: each key keeps 50-100 % of the maximum
    rng = np.random.default_rng([seed, 0x04C])
    counts = np.maximum(1, np.round(counts * rng.uniform(0.5, 1.0, size=counts.shape)))
  return counts.astype(np.int64)


def iter_cells(spec: specs_lib.DatasetSpec, *, count_per_cell: int | None = None,
               seed: int = 0, chunk: int = 8192,
               ) -> Iterator[tuple[int, int, np.ndarray]]:
  """Yields ``(class_index, snr, x)`` blocks in file order (class, then SNR ascending).

  ``x`` is float32 (n, 2, L); a cell larger than ``chunk`` comes in several blocks.
  """
  profile = profile_for(spec)
  counts = cell_counts(spec, count_per_cell, seed)
  for c, name in enumerate(spec.classes):
    for s, snr in enumerate(spec.snrs):
      remaining, part = int(counts[c, s]), 0
      while remaining > 0:
        n = min(chunk, remaining)
        rng = np.random.default_rng([seed, c, s, part])
        yield c, snr, synthesize(name, snr, spec.length, rng, count=n, profile=profile,
                                 normalisation=spec.normalisation)
        remaining -= n
        part += 1


def generate(spec: specs_lib.DatasetSpec, *, count_per_cell: int | None = None,
             seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """The whole stand-in in memory: ``x`` float32 (N, 2, L), ``y`` int32 (N,), ``snr`` int32 (N,).

  Rows are in file order (class, then SNR ascending). For files larger than memory use
  :func:`amrjax.data.formats.write_synthetic`, which streams the cells to disk.
  """
  xs, ys, snrs = [], [], []
  for c, snr, x in iter_cells(spec, count_per_cell=count_per_cell, seed=seed):
    xs.append(x)
    ys.append(np.full(len(x), c, np.int32))
    snrs.append(np.full(len(x), snr, np.int32))
  return np.concatenate(xs), np.concatenate(ys), np.concatenate(snrs)
