"""Batches read by threads of this process (data.loader=threads), the alternative to DataLoader workers.

Each window is copied (data.reader: out of the memory map, or by pread) straight into its row of the batch
tensor (pinned when a GPU will copy it): no worker processes to start (each importing torch, then reading
its first windows cold), no copy through shared memory, no collate copy of the windows. numpy's copies and
os.preadv release the GIL, so the threads read in parallel. The small per-item values (target, ids,
centre) are collated as the DataLoader collates them, so a batch equals the DataLoader's batch of the same
indices, key for key.
"""
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch.utils.data import default_collate

LOADERS = ("workers", "threads")  # data.loader: DataLoader worker processes, or this ThreadLoader


class ThreadLoader:
    """Batches of `order` (a sampler, re-read every epoch, or a list of indices) of an HMSDataset.

    threads: readers; prefetch: batches read ahead of the one being used (the model trains on one while
    the threads fill the next ones). A batch's tensors are its own (nothing is reused under a caller who
    keeps them); pinned host memory comes from torch's caching allocator, so it is not re-pinned."""

    def __init__(self, dataset, batch_size: int, order, threads: int = 2, prefetch: int = 2,
                 pin_memory: bool = False, drop_last: bool = False):
        if threads < 1 or prefetch < 0:
            raise ValueError(f"a ThreadLoader needs threads >= 1 and prefetch >= 0, not {threads} and {prefetch}")
        self.dataset, self.batch_size, self.order = dataset, batch_size, order
        self.threads, self.prefetch, self.pin_memory, self.drop_last = threads, prefetch, pin_memory, drop_last

    def __len__(self) -> int:
        n = len(self.order)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        indices = list(self.order)
        batches = [indices[k:k + self.batch_size] for k in range(0, len(indices), self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        pool = ThreadPoolExecutor(self.threads, thread_name_prefix="hms-loader")
        pending = deque()
        try:
            for batch in batches:
                pending.append(self._submit(pool, batch))
                if len(pending) > self.prefetch:
                    yield self._collect(*pending.popleft())
            while pending:
                yield self._collect(*pending.popleft())
        finally:  # also when the caller stops early (trainer.max_steps): queued reads are dropped
            pool.shutdown(wait=True, cancel_futures=True)

    def _submit(self, pool, indices):
        buffers = {name: torch.empty((len(indices), *source.input.window_shape),
                                     dtype=torch.from_numpy(np.empty(0, source.input.dtype)).dtype,
                                     pin_memory=self.pin_memory)
                   for name, source in self.dataset.sources.items()}
        arrays = {name: buffer.numpy() for name, buffer in buffers.items()}
        futures = [pool.submit(self.dataset.fill, index, {name: a[j] for name, a in arrays.items()})
                   for j, index in enumerate(indices)]
        return buffers, futures

    @staticmethod
    def _collect(buffers, futures) -> dict:
        return buffers | default_collate([f.result() for f in futures])  # result(): a reader's error, raised here
