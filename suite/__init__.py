"""The ground floor every package of the suite stands on.

What each package needs to behave the same way towards its users, and nothing about
stimuli, observers or analysis: ``errors`` (the one exception a user can fix),
``atomic`` and ``outputs`` (files and folders written safely, output paths checked),
``provenance`` (what every output records about how it was made), ``tables`` (CSV tables
read and written), ``command_line`` and ``cli_types`` (each package's front door and its
argument checks) and ``tfrecord`` (the TFRecord / tf.train.Example codec, without
TensorFlow). See docs/layout.md.
"""
