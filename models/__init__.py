"""DNN observers: a timm model zoo, decisions on stimuli, saliency, "where" alignment, the
harmonizer."""
