"""``python -m ulsam_nas.simulate``: see ``command.main``."""

from .command import main

raise SystemExit(main())
