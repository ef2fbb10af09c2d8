"""visionline serving: TensorFlow Serving's REST and gRPC contract over the Pusher's push directory.

* `serving.server` – the embedded local server (REST with tornado, gRPC with the official TF Serving protos),
  watching `<serving_root>/<model_name>/<version>/` and hot-swapping versions;
* `serving.clients.predict` – `visionline predict` (REST or gRPC) and `visionline predict-batch` (Apache Beam);
* `serving.cli` – `register()` / `dispatch()` for the `serve`, `predict` and `predict-batch` sub-commands;
* deployment files for the real TensorFlow Serving binary (`models.config`, `batching.config`,
  `docker-compose.yml`, `k8s/`), documented in `serving/README.md`.

Importing this package does not import TensorFlow; the modules that need it import `components` first so
Keras 2 is pinned before TensorFlow loads.
"""
