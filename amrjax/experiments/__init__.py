"""The experiments of the papers, each run from a config into a resumable run directory:
DUSE (``duse``), FoQuS (``foqus``), AFNet's CW loss (``cwloss``), ClST (``clst``), the
studies at the papers' scale (``duse_study``, ``foqus_study``), and what they share
(``common``: configs from presets, loading the data; ``rundir``: the run directory;
``study_runs``: reading a study folder). The command-line drivers in ``experiments/`` call
these.
"""
