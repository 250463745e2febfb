"""``python -m ulsam_nas.export``: see ``exporter.main``."""

from .exporter import main

raise SystemExit(main())
