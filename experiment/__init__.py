"""Running observers: trial lists, the PsychoPy lab runner, the online runner, simulated observers."""
