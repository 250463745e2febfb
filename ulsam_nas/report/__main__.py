"""``python -m ulsam_nas.report``: see ``writer.main``."""

from .writer import main

raise SystemExit(main())
