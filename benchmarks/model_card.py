"""The model card: parameters, forward FLOPs per sample and embedding size of every model.

For every registered model, at L = 128 with 11 classes (RML2016.10a) and at L = 1024 with 24
classes (RML2018.01a): the parameter count, the forward FLOPs of one sample in eval mode
(``amrjax.models.flops.count_flops``, which multiplies loop bodies by their trip count) next to
XLA's own cost analysis (which counts a loop body once, so it under-counts the recurrent
models), and the embedding width. Writes a markdown table.

  python -m benchmarks.model_card --out=docs/model_card.md
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
from absl import app, flags, logging

from amrjax import models
from amrjax.models.flops import count_flops, xla_flops

flags.DEFINE_string('out', 'docs/model_card.md', 'Markdown file to write.')
flags.DEFINE_list('models', None, 'Models to include (default: every registered model).')
FLAGS = flags.FLAGS

SETTINGS = ((128, 11), (1024, 24))
"""(L, C): RML2016.10a and RML2018.01a."""

REPORTED = {
    'cnn2d': ('2,830,427 (Keras VT-CNN2, L = 128, C = 11; radioML examples notebook)', 128),
    'iqformer': ('none found (paper text not available); the authors\' PyTorch code '
                 '(WestdoorSad/IQFormer) builds 355,049 at L = 128, C = 11, by our count '
                 '(`amrjax/models/iqformer.py`)', 128),
}
"""Parameter counts published for the original models, with the length they hold for."""


def measure(name: str, length: int, classes: int) -> dict:
  model = models.get(name, classes, length)
  x = jnp.zeros((1, 2, length), jnp.float32)
  variables = model.init(jax.random.key(0), x, train=False)
  forward = lambda v, x: model.apply(v, x, train=False)
  embedding = jax.eval_shape(lambda v, x: model.apply(v, x, method='embed'), variables, x)
  return {
      'params': models.parameter_count(variables),
      'flops': count_flops(forward, variables, x),
      'xla_flops': xla_flops(forward, variables, x),
      'embedding': embedding.shape[-1],
  }


def card(names) -> str:
  lines = [
      '| Model | Registry name | Params, L=128 C=11 | MFLOPs/sample, L=128 | '
      'Params, L=1024 C=24 | MFLOPs/sample, L=1024 | XLA MFLOPs, L=128 / 1024 | '
      'Embedding | Published count |',
      '|---|---|---:|---:|---:|---:|---:|---:|---|',
  ]
  for name in names:
    short, long_ = (measure(name, length, classes) for length, classes in SETTINGS)
    reported = REPORTED.get(name, ('not reported in the papers we have', None))[0]
    lines.append(
        f'| {models.label(name)} | `{name}` | {short["params"]:,} | '
        f'{short["flops"] / 1e6:,.2f} | {long_["params"]:,} | {long_["flops"] / 1e6:,.2f} | '
        f'{short["xla_flops"] / 1e6:,.2f} / {long_["xla_flops"] / 1e6:,.2f} | '
        f'{short["embedding"]} | {reported} |')
  return '\n'.join(lines) + '\n'


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  names = [models.canonical_name(n) for n in FLAGS.models] if FLAGS.models else models.names()
  t0 = time.time()
  table = card(names)
  header = (
      '# Model card\n\n'
      'Measured by `python -m benchmarks.model_card` (jax '
      f'{jax.__version__}). FLOPs: forward pass of one sample in eval mode, 2 per '
      'multiply-accumulate, counted from the jaxpr with loop bodies times their trip count '
      '(`amrjax/models/flops.py`); the XLA column is `cost_analysis()` of the compiled function, '
      'which counts a `while` body once and so under-counts the recurrent models by about '
      'the sequence length, and skips the multiply-adds on zero padding, so it is lower for '
      'models whose convolutions pad heavily (ResNet\'s 3 x 2 kernels on a width-2 image, '
      'SigNet, CLDNN). Parameters: trainable parameters (BatchNorm statistics '
      'excluded). Embedding: width of `embed(x)`, the features the geometric selection '
      'methods use.\n\n')
  with open(FLAGS.out, 'w') as f:
    f.write(header + table)
  print(table)
  print(f'wrote {FLAGS.out} ({time.time() - t0:.0f} s)')


if __name__ == '__main__':
  app.run(main)
