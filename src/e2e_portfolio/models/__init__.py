"""Differentiable optimisation layers, predictors, losses, training, shrinkage."""
