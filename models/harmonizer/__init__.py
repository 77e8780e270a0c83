"""The neural harmonizer: training networks to use the image features people use.

``loss`` (the harmonizer loss, paradigm §3), ``data`` (images with and without human maps,
the step-indexed batch order), ``clickme`` (ClickMe TFRecord shards as a dataset),
``training`` (the fine-tuning loop and ``python -m models harmonize``) and ``runs``
(finished runs as zoo models, ``harmonized_ft:<run>``). See docs/harmonizer.md.
"""
