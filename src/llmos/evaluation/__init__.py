"""Layer 6 (evaluation): score a model on a data file: perplexity, classification, generation.

Each task module returns a plain dict of metrics (`perplexity.evaluate_perplexity`,
`classification.evaluate_classification`, `generation_tasks.evaluate_generation`);
`report` writes them as JSON (and a confusion-matrix PNG); `llmos eval` is the CLI.
"""
