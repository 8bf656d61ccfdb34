"""Training: the loop (loop), losses, batch augmentation, schedule, sampler, checkpoints, DDP helpers."""
