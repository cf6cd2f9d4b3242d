"""Datasets: specs, real file formats, the synthetic stand-in, pools and splits."""
