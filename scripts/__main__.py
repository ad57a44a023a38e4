"""``python -m leopard.scripts`` runs the command line."""

import sys

from leopard.scripts.cli import main

sys.exit(main())
