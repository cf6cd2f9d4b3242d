r"""How well one hand-made feature tells WBFM from AM-DSB in the synthetic stand-in.

In the real RadioML files models confuse WBFM with AM-DSB because a vector in a pause of
the modulated speech is a bare carrier for both. This measures, for the generator's
profile, the best accuracy of one threshold on a single feature: the log-ratio of the phase's
wander (the unwrapped phase's std about a fitted straight line, which absorbs the carrier
offset) to the envelope's wander (std over mean). Near 1.0 the two classes are trivially
separable; the share of bare-carrier (paused) vectors caps it at 1 - pause_fraction / 2.

  python -m benchmarks.analog_separability                 # the current generator
  python -m benchmarks.analog_separability --pause_fraction=0   # no speech pauses (v1)
"""

from __future__ import annotations

import dataclasses

import numpy as np
from absl import app, flags

from amrjax.data import synth


def wander_feature(x: np.ndarray) -> np.ndarray:
  """(n, 2, L) I/Q -> (n,) log(phase wander) - log(envelope wander)."""
  z = x[:, 0] + 1j * x[:, 1]
  envelope = np.abs(z)
  envelope_wander = envelope.std(axis=1) / envelope.mean(axis=1)
  phase = np.unwrap(np.angle(z), axis=1)
  t = np.arange(z.shape[1])
  fit = np.polynomial.polynomial.polyfit(t, phase.T, 1)
  phase_wander = (phase - np.polynomial.polynomial.polyval(t, fit)).std(axis=1)
  return np.log(phase_wander) - np.log(envelope_wander)


def best_threshold_accuracy(fm: np.ndarray, am: np.ndarray) -> float:
  """Balanced accuracy of the best single threshold 'feature > t means FM'."""
  thresholds = np.sort(np.concatenate([fm, am]))
  return max(((fm > t).mean() + (am <= t).mean()) / 2 for t in thresholds)


def separability(profile: synth.ChannelProfile, snr_db: float, count: int,
                 seed: int = 0) -> float:
  rng = np.random.default_rng(seed)
  fm = wander_feature(synth.synthesize('WBFM', snr_db, 128, rng, count=count, profile=profile))
  am = wander_feature(synth.synthesize('AM-DSB', snr_db, 128, rng, count=count, profile=profile))
  return best_threshold_accuracy(fm, am)


def main(argv):
  del argv
  flags_ = flags.FLAGS
  profile = synth.PROFILES['rml2016.10a']
  if flags_.pause_fraction is not None:
    profile = dataclasses.replace(profile, pause_fraction=flags_.pause_fraction)
  print(f'generator v{synth.GENERATOR_VERSION} profile, pause_fraction '
        f'{profile.pause_fraction}, {flags_.count} vectors per class')
  for snr in flags_.snrs:
    print(f'  {float(snr):g} dB: WBFM vs AM-DSB, best one-threshold accuracy '
          f'{separability(profile, float(snr), flags_.count):.3f}')


if __name__ == '__main__':
  flags.DEFINE_float('pause_fraction', None, 'Override the profile\'s share of paused '
                     'analog vectors (0 = generator v1\'s messages).')
  flags.DEFINE_list('snrs', ['12', '18'], 'SNRs in dB.')
  flags.DEFINE_integer('count', 3000, 'Vectors per class.')
  app.run(main)
