"""Run inside .venv-keras: write a ClickMe-style TFRecord shard with TensorFlow's own writer.

Usage: write_clickme_shard.py OUT.tfrecords N SEED
Each record is a tf.train.Example with ``image`` (256×256×3 JPEG), ``heatmap`` (256×256×1
JPEG) and ``label`` (int64), as the ClickMe release stores them. Beside the shard,
OUT.npz holds the decoded images, heatmaps (as TensorFlow decodes them) and labels.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def main(out: str, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:256, :256]
    images, heats, labels = [], [], []
    with tf.io.TFRecordWriter(out) as writer:
        for i in range(n):
            image = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
            cy, cx = rng.integers(40, 216, 2)
            heat = (255 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 900.0)).astype(np.uint8)
            label = int([3, 500, 397, 398][i % 4])
            img_jpeg = tf.io.encode_jpeg(image, quality=95).numpy()
            heat_jpeg = tf.io.encode_jpeg(heat[..., None], quality=95).numpy()
            example = tf.train.Example(features=tf.train.Features(feature={
                "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[img_jpeg])),
                "heatmap": tf.train.Feature(bytes_list=tf.train.BytesList(value=[heat_jpeg])),
                "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
            }))
            writer.write(example.SerializeToString())
            images.append(tf.io.decode_jpeg(img_jpeg).numpy())
            heats.append(tf.io.decode_jpeg(heat_jpeg).numpy()[..., 0])
            labels.append(label)
    np.savez(os.path.splitext(out)[0] + ".npz", images=np.stack(images), heats=np.stack(heats),
             labels=np.array(labels))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
