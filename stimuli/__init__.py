"""Stimulus sets: images revealed through their importance maps over phase-scrambled noise."""
