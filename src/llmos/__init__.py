"""LLMOS: train, adapt, run and serve open language models with code you can read."""

__version__ = "0.1.0"
