"""Layer 9: the command line. One module per verb; `main.py` assembles them."""
