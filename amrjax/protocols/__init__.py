"""The papers' protocols built from scorers, selection and training: DUSE's
expansion rounds, FoQuS's coreset, the one-shot baselines, AFNet's CW loss, ClST's
distillation."""
