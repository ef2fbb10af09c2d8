"""visionline serving: TensorFlow Serving's REST and gRPC contract over the Pusher's push directory.

* `serving.server` – the embedded local server (REST with tornado, gRPC with the official TF Serving protos),
  watching `<serving_root>/<model_name>/<version>/` and hot-swapping versions;
* `serving.clients` – `visionline predict` (REST, gRPC or in-process: `predictors`, `files`, `results`) and
  `visionline predict-batch` (Apache Beam: `batch_prediction`);
* `serving.cli` – `register()` / `dispatch()` for the `serve`, `predict` and `predict-batch` sub-commands;
* the directory contract (which folders are versions, when one is complete) is
  `components.pusher.serving_layout`, shared with the Pusher that writes it;
* deployment files for the real TensorFlow Serving binary (`models.config`, `batching.config`,
  `docker-compose.yml`, `k8s/`), documented in `serving/README.md`.

Importing this package, `serving.cli` or the REST client does not import TensorFlow; the server modules that
import it import `components.environment` first, so Keras 2 is pinned before TensorFlow loads.
"""
