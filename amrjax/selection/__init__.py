"""Choosing samples from scores: top-k with a direction, class budgets and tiers
(``select``), and the registry of selection strategies (``strategies``)."""
