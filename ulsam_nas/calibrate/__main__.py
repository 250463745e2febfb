"""``python -m ulsam_nas.calibrate``: see ``command.main``."""

from .command import main

raise SystemExit(main())
