import dataclasses
import time

import numpy as np
import pytest

from amrjax.data import specs, synth
from amrjax.errors import ConfigError

CLEAN = synth.ChannelProfile(cfo_std=0.0, multipath_taps=1, rician_k_db=(60.0, 60.0))


def test_every_modulation_generates_finite_vectors():
  rng = np.random.default_rng(0)
  for name in synth.modulation_names():
    x = synth.synthesize(name, 10, 128, rng, count=8)
    assert x.shape == (8, 2, 128) and x.dtype == np.float32
    assert np.isfinite(x).all(), name


def test_unknown_modulation_is_refused():
  with pytest.raises(ConfigError, match='no modulation'):
    synth.synthesize('QAM3', 10, 128, np.random.default_rng(0), count=2)


@pytest.mark.parametrize('order', [16, 32, 64, 128, 256])
def test_qam_constellations(order):
  points = synth.qam(order)
  assert len(np.unique(np.round(points, 9))) == order
  assert np.mean(np.abs(points)**2) == pytest.approx(1.0)


def test_normalisations():
  rng = np.random.default_rng(1)
  x = synth.synthesize('QPSK', 5, 128, rng, count=16, normalisation=specs.L1_NORM)
  np.testing.assert_allclose(np.abs(x[:, 0] + 1j * x[:, 1]).sum(axis=1), 1.0, rtol=1e-5)
  x = synth.synthesize('QPSK', 5, 256, rng, count=16, normalisation=specs.UNIT_POWER)
  np.testing.assert_allclose((x**2).sum(axis=1).mean(axis=1), 1.0, rtol=1e-5)


def test_fsk_has_constant_envelope_on_a_clean_channel():
  x = synth.synthesize('CPFSK', 200, 512, np.random.default_rng(2), count=4, profile=CLEAN)
  envelope = np.abs(x[:, 0] + 1j * x[:, 1])
  # Only the fractional-delay interpolation ripples the envelope, by well under 1 %.
  assert envelope.std(axis=1).max() < 1e-2 * envelope.mean()


def test_bpsk_is_one_dimensional_on_a_clean_channel():
  x = synth.synthesize('BPSK', 200, 512, np.random.default_rng(3), count=4, profile=CLEAN)
  z = x[:, 0] + 1j * x[:, 1]
  # After removing the carrier phase, a real-valued pulse train remains.
  z = z * np.exp(-0.5j * np.angle(np.sum(z**2, axis=1, keepdims=True)))
  assert (np.abs(z.imag).mean(axis=1) < 1e-3 * np.abs(z.real).mean(axis=1)).all()


def _phase_wander(x):
  """Std of a vector's unwrapped phase about its carrier's straight line, radians, (n,)."""
  z = x[:, 0] + 1j * x[:, 1]
  phase = np.unwrap(np.angle(z), axis=1)
  t = np.arange(z.shape[1])
  fit = np.polynomial.polynomial.polyfit(t, phase.T, 1)
  return (phase - np.polynomial.polynomial.polyval(t, fit)).std(axis=1)


def test_speech_pauses_leave_am_and_fm_a_bare_carrier():
  """In a pause, WBFM and AM-DSB (with carrier) are the same flat, unswung carrier; in
  speech FM swings the phase and AM the envelope. Without pauses the quietest speech still
  swings FM's phase by tenths of a radian (generator version 1's WBFM/AM-DSB separability)."""
  rng = np.random.default_rng(4)
  paused = dataclasses.replace(CLEAN, pause_fraction=1.0)
  speech = dataclasses.replace(CLEAN, pause_fraction=0.0, loudness_db=(-30.0, -30.0))
  for name in ('WBFM', 'AM-DSB'):
    carrier = synth.synthesize(name, 200, 128, rng, count=8, profile=paused)
    envelope = np.abs(carrier[:, 0] + 1j * carrier[:, 1])
    assert (_phase_wander(carrier) < 0.01).all() and envelope.std(axis=1).max() < 0.01
  assert (_phase_wander(synth.synthesize('WBFM', 200, 128, rng, count=8, profile=speech))
          > 0.03).all()
  mixed = synth.synthesize('WBFM', 200, 128, rng, count=2000,
                           profile=dataclasses.replace(CLEAN, pause_fraction=0.3))
  assert np.mean(_phase_wander(mixed) < 0.01) == pytest.approx(0.3, abs=0.04)


def test_snr_sets_the_noise_level():
  rng = np.random.default_rng(4)
  clean = synth.synthesize('CPFSK', 60, 1024, rng, count=64, profile=CLEAN)
  noisy = synth.synthesize('CPFSK', 0, 1024, rng, count=64, profile=CLEAN)
  # A constant-envelope signal: the envelope's spread measures the noise.
  spread = lambda x: np.abs(x[:, 0] + 1j * x[:, 1]).std(axis=1).mean()
  assert spread(clean) < 0.01 < 0.3 < spread(noisy)


def test_cells_are_deterministic_and_seed_dependent():
  spec = specs.get_spec('rml2016.10a')
  a = synth.generate(spec, count_per_cell=3, seed=0)
  b = synth.generate(spec, count_per_cell=3, seed=0)
  c = synth.generate(spec, count_per_cell=3, seed=1)
  np.testing.assert_array_equal(a[0], b[0])
  assert not np.array_equal(a[0], c[0])
  x, y, snr = a
  assert x.shape == (11 * 20 * 3, 2, 128)
  assert (np.diff(y) >= 0).all()  # file order: class, then SNR ascending
  assert (snr[:3] == -20).all() and (snr[57:60] == 18).all()


def test_varying_counts_like_rml2016_04c():
  counts = synth.cell_counts(specs.get_spec('rml2016.04c'), 100, seed=0)
  assert counts.max() <= 100 and counts.min() >= 50 and len(np.unique(counts)) > 1


def test_hundred_thousand_vectors_well_under_a_minute():
  spec = specs.get_spec('rml2016.10a')
  t0 = time.time()
  x, _, _ = synth.generate(spec, count_per_cell=455)  # 100,100 vectors
  assert len(x) == 100_100
  assert time.time() - t0 < 30
