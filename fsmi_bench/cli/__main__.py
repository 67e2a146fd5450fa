"""``python -m fsmi_bench.cli``: the same as the ``fsmi`` command."""

from fsmi_bench.cli import main

main()
