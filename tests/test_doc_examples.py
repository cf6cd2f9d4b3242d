"""The Python examples of README.md and docs/library.md run as written.

Every fenced ```python block of a file is executed, in order, in one namespace per file (a
block may use what an earlier one defined), so an import that does not exist, a name never
defined or a wrong signature fails here. A block whose fence is preceded by the line
``<!-- doc-test: skip -->`` is only compiled; :data:`SKIPPED` says how many each file may
have, so a skip cannot be added unnoticed.

The examples are what a user runs: RadioML 2016.10a at its real size and 20 epochs. To run
them in well under a minute the test substitutes a few arguments (:data:`SUBSTITUTIONS`,
each entry with why) and points ``$AMRJAX_DATA_DIR`` and ``$AMRJAX_CACHE_DIR`` at an empty
temporary folder, so the data is always the synthetic stand-in, generated there. Every
entry must still match its file: when an example changes, the table is brought up to date
rather than the example silently running at full size.
"""

import pathlib
import re
import traceback
from typing import NamedTuple

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]

SKIP_MARKER = '<!-- doc-test: skip -->'


class Substitution(NamedTuple):
  """``old``, the example's text, is run as ``new``, for the reason ``why``."""

  old: str
  new: str
  why: str


_TINY_DATA = Substitution(
    old="sources.load('rml2016.10a')",
    new="sources.load('rml2016.10a', synthetic_per_cell=40)",
    why=('a 40-per-cell stand-in (8,800 vectors; above 10 dB 1,408 train, 14 target, 1,394 '
         'auxiliary) instead of the real size, 1,000 per cell: every class stays in the 1 % '
         'target set and the auxiliary set holds the 100 picks'))
_FEW_EPOCHS = Substitution(
    old='TrainConfig(epochs=20)', new='TrainConfig(epochs=2)',
    why='2 epochs: the fewest FoQuS accepts (its score needs T >= 2 presentations)')
_SMALL_RECORDING_POOL = Substitution(
    old='pool = s.train\n', new='pool = s.train.subset(np.arange(0, 1280, 5))\n',
    why=('the training dynamics recorded over 256 of the 1,408 training vectors, every '
         "fifth (2 steps an epoch instead of 11): the 2D-CNN's training steps are most of "
         'the time'))
_FEW_DEEPFOOL_STEPS = Substitution(
    old='max_iter=50', new='max_iter=3',
    why='DeepFool iterates in a lax.while_loop: 3 steps run the same code as 50, in less time')

SUBSTITUTIONS = {
    'README.md': (_TINY_DATA, _FEW_EPOCHS),
    'docs/library.md': (_TINY_DATA, _FEW_EPOCHS, _SMALL_RECORDING_POOL, _FEW_DEEPFOOL_STEPS),
}

# Blocks marked SKIP_MARKER, per file:
# - docs/library.md, "many processes": parallel.initialize_distributed must run in two
#   processes before any device is used, which one test process cannot do
#   (tests/test_multiprocess.py runs the many-process path).
SKIPPED = {'README.md': 0, 'docs/library.md': 1}

_FENCE = re.compile(r'^```(\S*)\s*$')


def python_blocks(text: str) -> list[tuple[int, str, bool]]:
  """``(first code line, code, skipped)`` of each fenced ```python block, in file order.

  Line numbers count from 1. A block is skipped when the last non-blank line before its
  fence is :data:`SKIP_MARKER`.
  """
  lines = text.splitlines()
  blocks, i = [], 0
  while i < len(lines):
    opening = _FENCE.match(lines[i])
    if not opening:
      i += 1
      continue
    end = next((j for j in range(i + 1, len(lines)) if lines[j].rstrip() == '```'), None)
    if end is None:
      raise AssertionError(f'unclosed code fence at line {i + 1}')
    if opening.group(1) == 'python':
      before = next((line.strip() for line in reversed(lines[:i]) if line.strip()), '')
      blocks.append((i + 2, '\n'.join(lines[i + 1:end]) + '\n', before == SKIP_MARKER))
    i = end + 1
  return blocks


def substituted(code: str, substitutions) -> tuple[str, set[int]]:
  """``code`` with every substitution applied, and which of them matched."""
  used = set()
  for index, (old, new, _) in enumerate(substitutions):
    if old in code:
      code = code.replace(old, new)
      used.add(index)
  return code, used


def run_examples(name: str, text: str) -> dict:
  """Runs the file's python blocks in order in one namespace; returns the namespace.

  Each block is compiled with the file's name and its own line numbers, so a traceback
  points at the line of the Markdown file.
  """
  substitutions = SUBSTITUTIONS[name]
  blocks = python_blocks(text)
  assert any(not skipped for _, _, skipped in blocks), f'{name}: no python block to run'
  namespace = {'__name__': 'doc_example'}
  used = set()
  for first_line, code, skip in blocks:
    if skip:
      compile(code, name, 'exec')  # not run, but it must still be Python
      continue
    code, matched = substituted(code, substitutions)
    used |= matched
    compiled = compile('\n' * (first_line - 1) + code, name, 'exec')
    failure = None
    try:
      exec(compiled, namespace)  # noqa: S102  (the documentation's own examples)
    except Exception as e:  # noqa: BLE001  (any failure of an example fails the test)
      failure = (f'{name}: the python block at line {first_line} raised '
                 f'{type(e).__name__}: {e}\n{traceback.format_exc()}')
    if failure:
      pytest.fail(failure, pytrace=False)
  skipped = sum(skipped for _, _, skipped in blocks)
  assert skipped == SKIPPED[name], (
      f'{name}: {skipped} blocks marked {SKIP_MARKER!r}, expected {SKIPPED[name]}; a skip '
      'needs a reason in tests/test_doc_examples.py (SKIPPED)')
  stale = [old for index, (old, _, _) in enumerate(substitutions) if index not in used]
  assert not stale, (f'{name}: substitutions that no longer match any example: {stale}; '
                     'update SUBSTITUTIONS in tests/test_doc_examples.py')
  return namespace


@pytest.mark.parametrize('name', sorted(SUBSTITUTIONS))
def test_python_examples_run(name, tmp_path, monkeypatch):
  monkeypatch.setenv('AMRJAX_DATA_DIR', str(tmp_path / 'data'))  # empty: no real file
  monkeypatch.setenv('AMRJAX_CACHE_DIR', str(tmp_path / 'cache'))
  namespace = run_examples(name, (REPO / name).read_text())
  # Both files start with the same example; it selected 100 samples of D_A.
  picked, s = namespace['picked'], namespace['s']
  assert len(set(picked.tolist())) == 100
  assert set(picked.tolist()) <= set(s.auxiliary.ids.tolist())


def test_skip_marker_and_fences_are_read():
  lines = ['intro', '```python', 'a = 1', '```', '',
           SKIP_MARKER, '', '```python', 'raise SystemExit', '```',
           '    shell line', '```text', 'not python', '```', '```python', 'b = a + 1', '```']
  text = '\n'.join(lines)
  assert python_blocks(text) == [(3, 'a = 1\n', False), (9, 'raise SystemExit\n', True),
                                 (16, 'b = a + 1\n', False)]
