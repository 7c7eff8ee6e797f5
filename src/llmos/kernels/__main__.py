"""Layer 2b (kernels): `python -m llmos.kernels` builds the int_dot extension into its cache (`make setup`)."""

from llmos.kernels.build import main

raise SystemExit(main())
