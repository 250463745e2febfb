"""``python -m ulsam_nas.latency``: see ``command.main``."""

from .command import main

raise SystemExit(main())
