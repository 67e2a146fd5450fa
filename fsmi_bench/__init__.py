"""fsmi: the FSMI-Edit benchmark and evaluation toolkit for free-shape-mask image editing.

Importing this package is cheap: no torch, no image libraries. Heavy modules are imported
by the commands that need them.
"""

__version__ = "0.1.0"

# Bumped whenever the builder, a source or a mask generator changes what a build writes.
BENCHMARK_VERSION = "fsmi-edit-1.1"
