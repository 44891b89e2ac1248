"""Metrics in percent: top-k accuracy, mean class accuracy, mAP (multi-label), exact over a dataset and under
DDP: predictions are collected per rank (eval shards hold every sample exactly once) and gathered."""
import numpy as np
import torch
import torch.distributed as dist


def topk_correct(scores, target, ks=(1, 5)):
    """Number of samples whose target is among the top-k scores, for each k (k capped at the class count)."""
    maxk = min(max(ks), scores.shape[1])
    pred = scores.topk(maxk, dim=1).indices                       # (B, maxk)
    hit = pred.eq(target.view(-1, 1))                             # (B, maxk)
    return [hit[:, : min(k, maxk)].any(1).sum().item() for k in ks]


def mean_class_accuracy(scores, target):
    """Recall averaged over the classes present in `target`."""
    pred = scores.argmax(1)
    classes = target.unique()
    return float(np.mean([(pred[target == c] == c).float().mean().item() for c in classes])) * 100


def average_precision(scores, positives):
    """AP of one class: mean precision at the rank of each positive (ties broken by order)."""
    order = np.argsort(-scores, kind="stable")
    hits = positives[order].astype(np.float64)
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / hits.sum())


def mean_average_precision(scores, targets):
    """mAP over classes with at least one positive (PySlowFast/mmaction2 convention), in percent."""
    scores, targets = np.asarray(scores, dtype=np.float64), np.asarray(targets) > 0
    aps = [average_precision(scores[:, k], targets[:, k]) for k in range(targets.shape[1]) if targets[:, k].any()]
    return float(np.mean(aps)) * 100 if aps else float("nan")


class Meter:
    """Sum and count of a scalar; `reduce()` sums over ranks."""

    def __init__(self):
        self.sum, self.count = 0.0, 0

    def update(self, value, n=1):
        self.sum += float(value) * n
        self.count += n

    def reduce(self, device="cpu"):
        if dist.is_available() and dist.is_initialized():
            t = torch.tensor([self.sum, self.count], dtype=torch.float64, device=device)
            dist.all_reduce(t)
            self.sum, self.count = t[0].item(), int(t[1].item())
        return self

    @property
    def avg(self):
        return self.sum / max(self.count, 1)


class Predictions:
    """Collects (scores, targets) of a whole evaluation and computes the paper metrics on every rank."""

    def __init__(self, multi_label=False):
        self.multi_label, self.scores, self.targets, self.ids = multi_label, [], [], []

    def update(self, scores, targets, ids=None):
        """ids: the dataset indices of the videos (for per-video outputs); default: running numbers."""
        self.scores.append(scores.detach().float().cpu())
        self.targets.append(targets.detach().cpu())
        start = sum(len(i) for i in self.ids)
        self.ids.append(ids.cpu() if ids is not None else torch.arange(start, start + len(scores)))

    def gather(self):
        """(scores, targets, ids) of all ranks."""
        empty = len(self.scores) == 0
        scores = torch.cat(self.scores) if not empty else torch.zeros(0, 0)
        targets = torch.cat(self.targets) if not empty else torch.zeros(0, dtype=torch.long)
        ids = torch.cat(self.ids) if not empty else torch.zeros(0, dtype=torch.long)
        if dist.is_available() and dist.is_initialized():
            parts = [None] * dist.get_world_size()
            dist.all_gather_object(parts, (scores, targets, ids))
            parts = [p for p in parts if len(p[2])] or parts[:1]
            scores, targets, ids = (torch.cat([p[i] for p in parts]) for i in range(3))
        return scores, targets, ids

    def compute(self):
        scores, targets, _ = self.gather()
        if len(targets) == 0:
            return {"val_map" if self.multi_label else "val_top1": float("nan"), "samples": 0}
        if self.multi_label:
            return {"val_map": mean_average_precision(scores.numpy(), targets.numpy()), "samples": len(targets)}
        top1, top5 = topk_correct(scores, targets, (1, 5))
        n = len(targets)
        return {"val_top1": 100.0 * top1 / n, "val_top5": 100.0 * top5 / n,
                "val_mean_class": mean_class_accuracy(scores, targets), "samples": n}
