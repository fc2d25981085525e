"""droplab: how dropout, batch normalization and classifier heads change what image classifiers learn."""

# Before anything imports torch or numpy: pin their CPU kernels (see droplab.kernel_pins).
from droplab import kernel_pins as _kernel_pins  # noqa: F401
