"""Command-line drivers: ``python -m experiments.<name> --help``."""
