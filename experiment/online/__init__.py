"""The online runner.

A static jsPsych site with a frame-locked plugin, and the study server that stores its trials.
"""
