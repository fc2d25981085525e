import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score, log_loss, top_k_accuracy_score

from droplab.training.metrics import Meter


@pytest.mark.parametrize("classes", [10, 7])
def test_meter_matches_scikit_learn(classes: int):
    generator = torch.Generator().manual_seed(classes)
    logits = torch.randn(257, classes, generator=generator) * 2
    labels = torch.randint(0, classes, (257,), generator=generator)
    labels[labels == classes - 1] = 0  # one class never occurs: macro F1 must still average over it
    meter = Meter(classes, torch.device("cpu"))
    for chunk in (slice(0, 100), slice(100, 257)):  # uneven batches must weigh right
        loss_sum = torch.nn.functional.cross_entropy(logits[chunk], labels[chunk], reduction="sum")
        meter.update(logits[chunk], labels[chunk], loss_sum)
    got = meter.summary()

    y, scores = labels.numpy(), logits.numpy()
    probs = torch.softmax(logits.double(), 1).numpy()
    assert got["acc1"] == pytest.approx(accuracy_score(y, scores.argmax(1)))
    assert got["acc5"] == pytest.approx(top_k_accuracy_score(y, scores, k=min(5, classes), labels=np.arange(classes)))
    assert got["f1_macro"] == pytest.approx(
        f1_score(y, scores.argmax(1), average="macro", labels=np.arange(classes), zero_division=0))
    assert got["loss"] == pytest.approx(log_loss(y, probs, labels=np.arange(classes)), rel=1e-5)
