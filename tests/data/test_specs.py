import pytest

from amrjax.data import specs
from amrjax.errors import ConfigError


def test_registry_holds_the_five_datasets():
  assert set(specs.names()) >= {'rml2016.10a', 'rml2016.10b', 'rml2016.04c', 'rml2018.01a',
                                'sig2019'}


def test_rml2016_10a_facts():
  s = specs.get_spec('rml2016.10a')
  assert s.classes == ('8PSK', 'AM-DSB', 'AM-SSB', 'BPSK', 'CPFSK', 'GFSK', 'PAM4', 'QAM16',
                       'QAM64', 'QPSK', 'WBFM')
  assert (s.length, s.snrs[0], s.snrs[-1], len(s.snrs)) == (128, -20, 18, 20)
  assert s.total_count == 220_000 and s.train_fraction == 0.8
  assert s.file_name == 'RML2016.10a_dict.pkl'


def test_rml2016_10b_drops_am_ssb():
  s = specs.get_spec('rml2016.10b')
  assert 'AM-SSB' not in s.classes and s.num_classes == 10
  assert s.total_count == 1_200_000


def test_rml2018_true_class_order():
  s = specs.get_spec('rml2018.01a')
  assert s.classes[:4] == ('OOK', '4ASK', '8ASK', 'BPSK')
  assert s.classes[-3:] == ('AM-DSB-SC', 'FM', 'GMSK', 'OQPSK')[-3:]
  assert s.classes.index('16QAM') == 12 and s.classes.index('FM') == 21
  assert s.total_count == 2_555_904 and s.length == 1024


def test_sig2019_facts():
  s = specs.get_spec('sig2019')
  assert (s.num_classes, s.length, s.count_per_cell) == (12, 512, 1500)
  assert s.total_count == 468_000
  assert s.train_fraction == pytest.approx(2 / 3)


def test_aliases_and_unknown_name():
  assert specs.get_spec('RML2016.10A').name == 'rml2016.10a'
  assert specs.get_spec('sig2019-12').name == 'sig2019'
  with pytest.raises(ConfigError, match="unknown dataset 'cifar10'; choose one of"):
    specs.get_spec('cifar10')
