"""``python -m ulsam_nas.search``: see ``command.main``."""

from .command import main

raise SystemExit(main())
