"""Classification metrics accumulated on the device, read back once per pass.

Top-k hits and a confusion matrix are summed per batch without `.item()`, so the training
loop never waits for the device; `summary()` is the single synchronisation point.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


class Meter:
    def __init__(self, num_classes: int, device: torch.device):
        self.num_classes = num_classes
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        self.top5_hits = torch.zeros((), dtype=torch.int64, device=device)
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    @torch.no_grad()
    def update(self, logits: torch.Tensor, labels: torch.Tensor, loss_sum: torch.Tensor) -> None:
        """`loss_sum` is the *summed* loss of the batch, so batches of any size weigh right."""
        self.loss_sum += loss_sum.detach().double()
        k = min(5, self.num_classes)
        topk = logits.detach().topk(k, dim=1).indices
        self.top5_hits += (topk == labels[:, None]).any(dim=1).sum()
        # A one-hot product rather than bincount: exact, and deterministic on CUDA too.
        truth = F.one_hot(labels, self.num_classes).float()
        predicted = F.one_hot(topk[:, 0], self.num_classes).float()
        self.confusion += (truth.T @ predicted).long()

    def summary(self) -> dict[str, float]:
        confusion = self.confusion.double().cpu()
        count = confusion.sum().item()
        true_pos = confusion.diag()
        # F1 per class = 2TP / (2TP + FP + FN); a class never seen nor predicted scores 0.
        denominator = confusion.sum(0) + confusion.sum(1)
        f1 = torch.where(denominator > 0, 2 * true_pos / denominator.clamp(min=1), torch.zeros_like(true_pos))
        return {
            "loss": self.loss_sum.item() / count,
            "acc1": true_pos.sum().item() / count,
            "acc5": self.top5_hits.item() / count,
            "f1_macro": f1.mean().item(),
        }
