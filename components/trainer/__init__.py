"""Trainer code: model assembly, training phases, KerasTuner search, SavedModel export, backbones."""
