"""``python -m ulsam_nas.latency``: see ``table.main``."""

from .table import main

raise SystemExit(main())
