from amrjax.reporting import tables


def test_format_cell():
  assert tables.format_cell([0.5, 0.7]) == '60.00 ± 10.00'
  assert tables.format_cell([0.1234]) == '12.34'
  assert tables.format_cell([]) == '-'


def test_text_table_layout():
  table = tables.text_table({'A': {'1%': [0.5, 0.6], '4%': [0.7]}, 'Bee': {'4%': [0.1]}},
                            ['1%', '4%'], title='T', row_header='Method')
  lines = table.splitlines()
  assert lines[0] == 'T'
  assert lines[1].split() == ['Method', '1%', '4%']
  assert lines[3].split() == ['A', '55.00', '±', '5.00', '70.00']
  assert lines[4].split() == ['Bee', '-', '10.00']
