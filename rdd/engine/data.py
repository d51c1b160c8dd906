"""Deterministic, resumable, iteration-based data feeding.

The training loop counts *iterations*, not epochs. Iteration ``t`` (0-based, global) of rank
``r`` reads

* epoch ``e = t // B`` and position ``j = t % B`` where ``B`` = batches per epoch per rank;
* the sample indices ``DistributedSampler(seed, shuffle=True).set_epoch(e)`` gives rank ``r``,
  items ``j·b … (j+1)·b − 1`` (``b`` = per-rank batch size; a last partial batch is dropped);
* an augmentation seed per sample ``SeedSequence([seed, e, index])`` → the
  ``numpy.random.Generator`` handed to :class:`rdd.data.TrainTransform`.

Everything is a function of ``(seed, t)``: no data-loader state needs checkpointing, a resumed
run reads exactly the batches the uninterrupted run would have read, for any ``num_workers``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

__all__ = ["SeededTrainSet", "EpochSlice", "InfiniteLoader", "aug_seed"]


def aug_seed(seed: int, epoch: int, index: int) -> int:
    """A 64-bit augmentation seed for sample ``index`` in ``epoch`` of a run seeded ``seed``."""
    return int(
        np.random.SeedSequence([int(seed), int(epoch), int(index)]).generate_state(1, dtype=np.uint64)[0]
    )


class SeededTrainSet(Dataset):
    """``dataset[(index, seed)]`` → ``transform(*dataset.load(index), rng=default_rng(seed))``.

    Args:
        dataset: an :class:`rdd.data.SegmentationDataset` (only ``load`` and ``len`` are used).
        transform: a callable ``(image, mask, rng) -> (x, y)`` such as :class:`rdd.data.TrainTransform`.
    """

    def __init__(self, dataset: Any, transform: Any) -> None:
        self.dataset = dataset
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        index, seed = key
        image, mask = self.dataset.load(int(index))
        return self.transform(image, mask, rng=np.random.default_rng(int(seed)))


class EpochSlice(Sampler):
    """Yields ``(index, aug_seed)`` for one epoch of one rank, starting at item ``start``."""

    def __init__(self, indices: list[int], *, seed: int, epoch: int, start: int = 0) -> None:
        self.items = [(int(i), aug_seed(seed, epoch, i)) for i in indices[start:]]

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(self.items)


class InfiniteLoader:
    """Endless batches for global iterations ``start_iter, start_iter + 1, …`` (epoch-cycling).

    Args:
        dataset: a :class:`SeededTrainSet`.
        batch_size: per-rank batch size.
        rank, world_size: this process's shard (``DistributedSampler`` semantics).
        seed: the run's seed (data order and augmentation).
        start_iter: global iteration of the first batch returned.
        num_workers, pin_memory: passed to the per-epoch ``DataLoader``.
    """

    def __init__(
        self,
        dataset: SeededTrainSet,
        *,
        batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        start_iter: int = 0,
        num_workers: int = 0,
        pin_memory: bool = False,
    ) -> None:
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.sampler = DistributedSampler(
            dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=False
        )
        self.batches_per_epoch = self.sampler.num_samples // self.batch_size
        if self.batches_per_epoch < 1:
            raise ValueError(
                f"data: the training split has {len(dataset)} samples, fewer than one batch per "
                f"rank (batch_size {batch_size} × world size {world_size}); lower data.batch_size"
            )
        self.seed = int(seed)
        self.num_workers = int(num_workers)
        self.pin_memory = bool(pin_memory)
        self.iteration = int(start_iter)
        self._it: Iterator | None = None
        self._remaining = 0

    def epoch_of(self, iteration: int) -> int:
        return iteration // self.batches_per_epoch

    def _start_epoch(self) -> None:
        epoch, pos = divmod(self.iteration, self.batches_per_epoch)
        self.sampler.set_epoch(epoch)
        indices = list(self.sampler)[: self.batches_per_epoch * self.batch_size]
        sampler = EpochSlice(indices, seed=self.seed, epoch=epoch, start=pos * self.batch_size)
        # A private generator: creating the loader must not draw from the global torch RNG
        # (that stream drives dropout and is checkpointed; augmentation is seeded per sample).
        gen = torch.Generator().manual_seed(aug_seed(self.seed, epoch, len(self.dataset)) % 2**63)
        loader = DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            drop_last=True,
            persistent_workers=False,
            generator=gen,
        )
        self._it = iter(loader)
        self._remaining = self.batches_per_epoch - pos

    def __iter__(self) -> InfiniteLoader:
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._remaining <= 0 or self._it is None:
            self._start_epoch()
        batch = next(self._it)  # type: ignore[arg-type]
        self._remaining -= 1
        self.iteration += 1
        return batch
