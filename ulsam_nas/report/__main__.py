"""``python -m ulsam_nas.report``: see ``command.main``."""

from .command import main

raise SystemExit(main())
