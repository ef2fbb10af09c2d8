"""tf.Transform preprocessing: decode, resize, normalise, label vocabulary."""
