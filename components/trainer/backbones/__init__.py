"""Pretrained image backbones built with tf_keras (Keras 2), with weight conversion from their published checkpoints."""
