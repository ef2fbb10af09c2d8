"""Pretrained image backbones built with tf_keras (Keras 2), with weight conversion from their published checkpoints.

* `registry` – every backbone by name: input sizes, pixel normalisation, how its weights are obtained;
* `efficientnet_lite` – the EfficientNet-Lite architecture (`LiteVariant`, `LITE0`) and its `preprocess_input`;
* `efficientnet_lite_weights` – its ImageNet weights: PyTorch state dict → Keras, the converted `.h5` cache;
* `torch_state_dict` – a safe reader for PyTorch state dicts (no torch, no pickled code run).
"""
