"""``python -m ulsam_nas.train``: see ``loop.main``."""

from .loop import main

raise SystemExit(main())
