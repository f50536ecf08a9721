"""``python -m service`` is ``layerserve``."""

from service.cli import main

raise SystemExit(main())
