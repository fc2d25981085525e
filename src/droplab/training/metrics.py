"""Classification metrics accumulated on the device, read back once per pass.

Each step only keeps its top-k predictions, labels and summed loss (one `topk`, no host
synchronisation); `summary()` turns them into counts in a few batched ops and is the single
point where the host waits for the device. Under data parallelism the counts are summed
across ranks there too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.nn import functional as F

Reduce = Callable[[torch.Tensor], torch.Tensor]


class Meter:
    def __init__(self, num_classes: int, device: torch.device):
        self.num_classes = num_classes
        self.device = device
        self.losses: list[torch.Tensor] = []
        self.topk: list[torch.Tensor] = []
        self.labels: list[torch.Tensor] = []

    @torch.no_grad()
    def update(self, logits: torch.Tensor, labels: torch.Tensor, loss_sum: torch.Tensor) -> None:
        """`loss_sum` is the *summed* loss of the batch, so batches of any size weigh right."""
        self.losses.append(loss_sum.detach())
        self.topk.append(logits.detach().topk(min(5, self.num_classes), dim=1).indices)
        self.labels.append(labels)

    def first_nonfinite_loss(self) -> tuple[int, float] | None:
        """(1-based step, loss) of the first batch whose loss was NaN or infinite; None if none was."""
        if not self.losses:
            return None
        losses = torch.stack(self.losses)
        bad = (~torch.isfinite(losses)).nonzero()
        if not len(bad):
            return None
        step = int(bad[0, 0])
        return step + 1, losses[step].item()

    def counts(self) -> torch.Tensor:
        """[confusion matrix (true x predicted, flattened), summed loss, top-5 hits] as one float64 vector."""
        if not self.labels:
            return torch.zeros(self.num_classes ** 2 + 2, dtype=torch.float64, device=self.device)
        topk, labels = torch.cat(self.topk), torch.cat(self.labels)
        # A one-hot product rather than bincount: exact, and deterministic on CUDA too.
        truth = F.one_hot(labels, self.num_classes).double()
        predicted = F.one_hot(topk[:, 0], self.num_classes).double()
        top5_hits = (topk == labels[:, None]).any(dim=1).sum().double()
        loss_sum = torch.stack(self.losses).double().sum()
        return torch.cat([(truth.T @ predicted).flatten(), loss_sum[None], top5_hits[None]])

    def summary(self, reduce: Reduce | None = None, per_class: bool = False) -> dict[str, Any]:
        """Loss, top-1/top-5 accuracy and macro F1; with `per_class`, also each class's F1 and the
        confusion matrix (true x predicted counts). `reduce` sums the counts across processes."""
        counts = self.counts()
        if reduce is not None:
            counts = reduce(counts)
        counts = counts.cpu()
        c = self.num_classes
        confusion, loss_sum, top5_hits = counts[: c * c].view(c, c), counts[c * c].item(), counts[c * c + 1].item()
        count = confusion.sum().item()
        true_pos = confusion.diag()
        # F1 per class = 2TP / (2TP + FP + FN); a class never seen nor predicted scores 0.
        denominator = confusion.sum(0) + confusion.sum(1)
        f1 = torch.where(denominator > 0, 2 * true_pos / denominator.clamp(min=1), torch.zeros_like(true_pos))
        result: dict[str, Any] = {
            "loss": loss_sum / count,
            "acc1": true_pos.sum().item() / count,
            "acc5": top5_hits / count,
            "f1_macro": f1.mean().item(),
        }
        if per_class:
            result["f1_per_class"] = f1.tolist()
            result["confusion"] = confusion.long().tolist()
        return result
