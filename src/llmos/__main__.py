"""Layer 9: `python -m llmos ...` is the `llmos` command (the studio's jobs start verbs this way)."""

from llmos.cli.main import main

if __name__ == "__main__":
    main()
