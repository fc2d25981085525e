"""droplab: how dropout, batch normalization and classifier heads change what image classifiers learn."""

# Before anything imports torch or numpy: pin their CPU kernels (see droplab.platform).
from droplab import platform as _platform  # noqa: F401
