"""Tables, plots and the per-run report.md."""
