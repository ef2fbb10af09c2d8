"""visionline components: the TFX components and the TFX-free code they run.

* `example_gen` – ImageExampleGen: image folders / CSV manifests → tf.Examples, quarantining bad files;
* `validation_gate` – the data gate between ExampleValidator and Transform;
* `transform` – tf.Transform preprocessing (decode, resize, normalise, label vocabulary);
* `trainer` – model assembly, training phases, KerasTuner search, SavedModel export, backbones;
* `evaluator` – metric keys, what each task computes and gates, custom TFMA metrics;
* `pusher` – atomic pushes into TF Serving's model directory;
* `modules` – the module files TFX's Transform, Tuner and Trainer call.

Importing this package has no side effects: entry points import `components.environment` first (Keras 2).
"""
