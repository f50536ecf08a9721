"""``python -m layerserve.server`` is ``layerserve``."""

from layerserve.server.cli import main

raise SystemExit(main())
