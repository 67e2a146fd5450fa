"""The run stage: the method interface, the engine that runs a method over a benchmark, the run folder."""
