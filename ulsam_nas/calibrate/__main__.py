"""``python -m ulsam_nas.calibrate``: see ``calibration.main``."""

from .calibration import main

raise SystemExit(main())
