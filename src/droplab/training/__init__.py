"""Training on the device: the loop, batches, augmentation, data parallelism, checkpoints, metrics, seeding."""
