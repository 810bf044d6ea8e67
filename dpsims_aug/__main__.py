"""``python -m dpsims_aug``: the same as the ``dpsims-aug`` console script."""

import sys

from dpsims_aug.cli import main

sys.exit(main())
