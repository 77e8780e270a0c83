"""Running observers.

Trial lists, the PsychoPy lab runner, the online runner, simulated observers.
"""
