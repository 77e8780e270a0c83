"""The online runner: a static jsPsych site with a frame-locked plugin, and the study server that stores its trials."""
