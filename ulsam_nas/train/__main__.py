"""``python -m ulsam_nas.train``: see ``command.main``."""

from .command import main

raise SystemExit(main())
