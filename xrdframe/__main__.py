"""``python -m xrdframe`` runs the command line."""

import sys

from xrdframe.cli import main

sys.exit(main())
