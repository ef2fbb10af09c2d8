"""Tests for confident learning (pipeline.report.label_issues) and the held-out probabilities it runs on
(pipeline.report.held_out): hand-computed thresholds and confident joint, properties under hypothesis, and on
synthetic separable data with known flipped labels (found) and clean labels (next to none flagged).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pipeline.report import held_out
from pipeline.report.label_issues import (
    confidence_thresholds,
    confident_classes,
    confident_joint,
    find_label_issues,
    find_multilabel_issues,
    quality_scores,
)


def test_thresholds_joint_and_issues_by_hand():
    labels = np.array([0, 0, 0, 1, 1, 2])
    probabilities = np.array([
        [0.8, 0.1, 0.1],   # 0, confidently 0
        [0.6, 0.3, 0.1],   # 0, confidently 0
        [0.1, 0.8, 0.1],   # labelled 0, confidently 1: an issue
        [0.2, 0.7, 0.1],   # 1
        [0.3, 0.5, 0.2],   # 1, below t_1 = 0.6 and t_0 = 0.5: no confident class
        [0.1, 0.1, 0.8],   # 2
    ])
    thresholds = confidence_thresholds(labels, probabilities)
    assert thresholds == pytest.approx([0.5, 0.6, 0.8])
    assert confident_classes(probabilities, thresholds).tolist() == [0, 0, 1, 1, -1, 2]
    assert confident_joint(labels, probabilities).tolist() == [[2, 1, 0], [0, 1, 0], [0, 0, 1]]
    issues = find_label_issues(labels, probabilities)
    assert [(i.index, i.given, i.suggested) for i in issues] == [(2, 0, 1)]
    assert issues[0].score == pytest.approx(0.1) and issues[0].suggested_probability == pytest.approx(0.8)
    margin = find_label_issues(labels, probabilities, ranking="normalized_margin")[0]
    assert margin.score == pytest.approx((0.1 - 0.8 + 1) / 2)


def test_a_class_without_examples_is_never_suggested_and_top_class_filter_applies():
    labels = np.array([0, 0, 1, 1])
    probabilities = np.array([[0.5, 0.1, 0.4], [0.9, 0.05, 0.05], [0.45, 0.35, 0.2], [0.1, 0.8, 0.1]])
    assert np.isinf(confidence_thresholds(labels, probabilities)[2])
    # row 2: labelled 1 (t_1 = 0.575), confidently 0 (0.45 ≥ t_0 = 0.7? no) → no confident class → not an issue
    assert find_label_issues(labels, probabilities) == []
    # the model's top class is the given label: never an issue, even when another class is confident too
    assert find_label_issues([0, 1], np.array([[0.55, 0.45], [0.5, 0.5]])) == []


def test_bad_inputs_are_refused_by_name():
    with pytest.raises(ValueError, match="class ids"):
        find_label_issues([0, 3], np.full((2, 2), 0.5))
    with pytest.raises(ValueError, match="NaN"):
        find_label_issues([0, 1], np.array([[np.nan, 1.0], [0.5, 0.5]]))
    with pytest.raises(ValueError, match="expected"):
        find_label_issues([0, 1, 1], np.full((2, 2), 0.5))
    with pytest.raises(ValueError, match="ranking"):
        quality_scores([0], np.array([[1.0]]), ranking="loss")
    with pytest.raises(ValueError, match="0 or 1"):
        find_multilabel_issues(np.array([[2, 0]]), np.array([[0.5, 0.5]]))


@st.composite
def _problems(draw):
    n = draw(st.integers(1, 30))
    classes = draw(st.integers(2, 5))
    raw = draw(hnp.arrays(np.float64, (n, classes), elements=st.floats(0.01, 1.0)))
    labels = draw(hnp.arrays(np.int64, n, elements=st.integers(0, classes - 1)))
    return labels, raw / raw.sum(axis=1, keepdims=True)


@settings(max_examples=60, deadline=None)
@given(_problems())
def test_properties_of_the_confident_joint_and_the_issues(problem):
    labels, probabilities = problem
    joint = confident_joint(labels, probabilities)
    guess = confident_classes(probabilities, confidence_thresholds(labels, probabilities))
    assert joint.sum() == (guess >= 0).sum()
    assert (joint.sum(axis=1) <= np.bincount(labels, minlength=probabilities.shape[1])).all()
    issues = find_label_issues(labels, probabilities)
    assert sum(joint[i, j] for i in range(len(joint)) for j in range(len(joint)) if i != j) >= len(issues)
    for issue in issues:
        assert issue.suggested != issue.given == labels[issue.index]
        assert probabilities[issue.index].argmax() != issue.given
        assert 0.0 <= issue.score <= 1.0
    assert [i.score for i in issues] == sorted(i.score for i in issues)
    order = np.random.default_rng(0).permutation(len(labels))  # the same examples in another order: same issues
    moved = find_label_issues(labels[order], probabilities[order])
    assert sorted(order[i.index] for i in moved) == sorted(i.index for i in issues)
    margins = quality_scores(labels, probabilities, "normalized_margin")
    assert ((0.0 <= margins) & (margins <= 1.0)).all()


@settings(max_examples=30, deadline=None)
@given(hnp.arrays(np.int64, st.integers(1, 40), elements=st.integers(0, 3)))
def test_labels_the_model_agrees_with_confidently_have_no_issues(labels):
    probabilities = np.full((len(labels), 4), 0.02)
    probabilities[np.arange(len(labels)), labels] = 0.94
    assert find_label_issues(labels, probabilities) == []


def _blobs(seed: int, per_class: int = 60, classes: int = 3, dims: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 6.0, (classes, dims))
    labels = np.repeat(np.arange(classes), per_class)
    return centres[labels] + rng.normal(0.0, 1.0, (len(labels), dims)), labels


@pytest.mark.parametrize("seed", [0, 1])
def test_flipped_labels_in_separable_data_are_found(seed):
    embeddings, truth = _blobs(seed)
    rng = np.random.default_rng(100 + seed)
    flipped = rng.choice(len(truth), 12, replace=False)
    given_labels = truth.copy()
    given_labels[flipped] = (truth[flipped] + rng.integers(1, 3, len(flipped))) % 3
    probabilities, folds = held_out.cross_validated_probabilities(embeddings, given_labels, 3, folds=5, seed=seed)
    assert folds == 5 and probabilities.shape == (len(truth), 3)
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    issues = find_label_issues(given_labels, probabilities)
    found = {i.index for i in issues}
    assert len(found & set(flipped)) >= 10  # most flipped labels are found (a few fall below every threshold) ...
    assert len(found - set(flipped)) <= 2  # ... and (almost) nothing else
    for issue in issues:
        if issue.index in set(flipped):
            assert issue.suggested == truth[issue.index]  # the suggestion is the true class
    assert {i.index for i in issues[:8]} <= set(flipped)  # the most likely ones first


def test_clean_separable_data_has_next_to_no_issues():
    embeddings, labels = _blobs(3)
    probabilities, _ = held_out.cross_validated_probabilities(embeddings, labels, 4, folds=5)
    assert probabilities[:, 3].max() == 0.0  # class 3 has no examples: probability 0 everywhere
    assert len(find_label_issues(labels, probabilities)) <= 2


def test_binary_is_two_classes_and_multilabel_is_checked_label_by_label():
    embeddings, truth = _blobs(4, classes=2)
    flipped = np.array([3, 70, 101])
    given_labels = truth.copy()
    given_labels[flipped] = 1 - truth[flipped]
    probabilities, _ = held_out.cross_validated_probabilities(embeddings, given_labels, 2, folds=4)
    assert {i.index for i in find_label_issues(given_labels, probabilities)} == set(flipped)

    # multilabel: label 0 = class 0 of the blobs, label 1 = class 1 of other blobs; flip a few label-0 entries
    other, second = _blobs(5, classes=2)
    multi_hot = np.stack([1 - truth, second], axis=1)
    features = np.concatenate([embeddings, other], axis=1)
    noisy = multi_hot.copy()
    noisy[[5, 90], 0] = 1 - noisy[[5, 90], 0]
    noisy[[40], 1] = 1 - noisy[[40], 1]
    probabilities, folds = held_out.cross_validated_multilabel(features, noisy, folds=4)
    assert probabilities.shape == (len(truth), 2) and folds == 4
    found = find_multilabel_issues(noisy, probabilities)
    assert {(label, issue.index) for label, issue in found} == {(0, 5), (0, 90), (1, 40)}
    assert all(issue.suggested == 1 - issue.given for _, issue in found)


def test_held_out_refuses_what_it_cannot_cross_validate():
    with pytest.raises(ValueError, match="only 1 class"):
        held_out.cross_validated_probabilities(np.zeros((4, 2)), np.zeros(4, dtype=int), 2, folds=3)
    with pytest.raises(ValueError, match="fewer than two examples per class"):
        held_out.cross_validated_probabilities(np.eye(2), np.array([0, 1]), 2, folds=3)
    with pytest.raises(ValueError, match="NaN"):
        held_out.cross_validated_probabilities(np.array([[np.nan], [1.0], [2.0], [3.0]]), np.array([0, 0, 1, 1]),
                                               2, folds=2)
