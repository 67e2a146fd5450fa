"""fsmi: the FSMI-Edit benchmark and evaluation toolkit for free-shape-mask image editing.

Importing this package is cheap: no torch, no image libraries. Heavy modules are imported
by the commands that need them.
"""

__version__ = "0.1.0"

# Bumped whenever the builder, a source or a mask generator changes what a build writes.
BENCHMARK_VERSION = "fsmi-edit-1.1"

# The Python API (``fsmi_bench.api``), imported on first use so that ``import fsmi_bench`` stays instant:
# ``import fsmi_bench as fsmi; bench = fsmi.load_benchmark(...)``.
_API_NAMES = ("load_benchmark", "run_method", "score", "make_report", "Bench", "Case", "Run", "Report", "Method",
              "EditRequest")


def __getattr__(name: str):
    if name in _API_NAMES:
        from fsmi_bench import api

        return getattr(api, name)
    raise AttributeError(f"module 'fsmi_bench' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_API_NAMES])
