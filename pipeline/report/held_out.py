"""Out-of-sample class probabilities for training images, as confident learning needs them: K-fold
cross-validated logistic regression (scikit-learn) on the trained model's image embeddings — cleanlab's own
recommended recipe for data a big model was trained on. Each example's probabilities come from the fold model
that did not see it. No TensorFlow here: embeddings in, probabilities out.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

MAX_ITER = 500


def method_text(folds: int) -> str:
    """How the probabilities were obtained, one line for the report."""
    return (f"{folds}-fold cross-validated logistic regression on the trained model's image embeddings (the "
            "backbone's pooled features): every image is scored by a model that did not see it")


def cross_validated_probabilities(embeddings: np.ndarray, labels: np.ndarray, classes: int, folds: int,
                                  seed: int = 0) -> tuple[np.ndarray, int]:
    """(probabilities [N, classes], folds used) for single-label data (`labels`: class ids [N]).

    Stratified folds; at most one fold per example of the largest class. A class missing from a fold's training
    part gets probability 0 from that fold. ValueError when fewer than two classes have examples or fewer than
    two folds are possible.
    """
    x, y = _checked(embeddings, labels)
    present = np.unique(y)
    if len(present) < 2:
        raise ValueError(f"only {len(present)} class has training examples: nothing to tell apart")
    counts = np.bincount(y)
    used = min(folds, int(counts.max()))
    if used < 2:
        raise ValueError("fewer than two examples per class: no cross-validation possible")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=MAX_ITER))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (ConvergenceWarning, UserWarning, RuntimeWarning))
        found = cross_val_predict(model, x, y, cv=StratifiedKFold(used, shuffle=True, random_state=seed),
                                  method="predict_proba")
    probabilities = np.zeros((len(y), classes))
    probabilities[:, present] = found
    return probabilities, used


def cross_validated_multilabel(embeddings: np.ndarray, multi_hot: np.ndarray, folds: int,
                               seed: int = 0) -> tuple[np.ndarray, int]:
    """(probabilities [N, labels], folds used) for multilabel data: one logistic regression per label
    (one-vs-rest), K-fold. A label constant in a fold's training part is predicted as that constant."""
    x = np.asarray(embeddings, dtype=np.float64)
    y = np.asarray(multi_hot).astype(np.int64)
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
        raise ValueError(f"embeddings [N, D] and multi-hot labels [N, L] expected; got {x.shape} and {y.shape}")
    used = min(folds, len(y))
    if used < 2:
        raise ValueError("fewer than two examples: no cross-validation possible")
    model = make_pipeline(StandardScaler(), OneVsRestClassifier(LogisticRegression(max_iter=MAX_ITER)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (ConvergenceWarning, UserWarning, RuntimeWarning))
        found = cross_val_predict(model, x, y, cv=KFold(used, shuffle=True, random_state=seed),
                                  method="predict_proba")
    return np.asarray(found, dtype=np.float64), used


def _checked(embeddings: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(embeddings, dtype=np.float64)
    y = np.asarray(labels)
    if x.ndim != 2 or y.ndim != 1 or len(x) != len(y):
        raise ValueError(f"embeddings [N, D] and labels [N] expected; got {x.shape} and {y.shape}")
    if not np.isfinite(x).all():
        raise ValueError("embeddings contain NaN or infinity")
    return x, y.astype(np.int64)
