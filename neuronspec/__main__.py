"""``python -m neuronspec``: the command line (``neuronspec --help``)."""

import sys

from .cli import main

sys.exit(main())
