"""Benchmarks of droplab against the usual way of doing the same work; run with `python -m bench`.

Speeds are reported as ratios against a baseline measured in the same run, because this
machine's absolute speed drifts from minute to minute.
"""

import warnings

import droplab  # noqa: F401  (first: droplab and its baselines are timed on the pinned CPU kernels)

# torchvision applies torch.jit.script at import, which torch now marks deprecated; it changes nothing measured.
warnings.filterwarnings("ignore", message=".*torch.jit.*deprecated", category=FutureWarning)
