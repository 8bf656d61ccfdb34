"""The order of training samples: a pure function of (seed, epoch), sharded over DDP ranks so that the
ranks' batches together are exactly the one-process batch of the same global size. Each index comes with
its epoch, (epoch, i): the Dataset draws its augmentation from them, so persistent DataLoader workers (which
never see a set_epoch on the main process's Dataset) stay in step."""
import numpy as np
from torch.utils.data import Sampler


class EpochSampler(Sampler):
    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world: int = 1,
                 shuffle: bool = True):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world, self.shuffle = rank, world, shuffle
        self.epoch = 0
        global_batch = batch_size * world
        # drop the last incomplete global batch: every step then has the same global batch size
        self.steps = n // global_batch
        if self.steps == 0:
            raise ValueError(f"{n} training samples are fewer than one global batch of {global_batch}")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        order = (np.random.default_rng([self.seed, self.epoch]).permutation(self.n) if self.shuffle
                 else np.arange(self.n))
        order = order[: self.steps * self.batch_size * self.world]
        # global batch k is order[k*B*W:(k+1)*B*W]; rank r takes every W-th sample of it
        return iter([(self.epoch, i) for i in order[self.rank::self.world].tolist()])

    def __len__(self) -> int:
        return self.steps * self.batch_size
