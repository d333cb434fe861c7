"""duplex: a dev environment for GPU speech-AI stacks, right the first time."""

__version__ = "0.1.0"
