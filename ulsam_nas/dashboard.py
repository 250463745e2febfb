"""python -m ulsam_nas.dashboard: optuna-dashboard on a study folder, with its artifacts.

    python -m ulsam_nas.dashboard --study studies/mv2-synthetic [--port 8080] [--host 127.0.0.1]

Serves the study's storage (whatever --storage the search used) and the study's artifact store
(``<study>/artifacts``: reports and exported models), bound to 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .cli import ArgumentParser, fail, load_study_for_command


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m ulsam_nas.dashboard", description="optuna-dashboard on a study folder.")
    parser.add_argument("--study", type=Path, required=True, help="study folder (as given to the search)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--storage", default=None,
                        help="the study's storage, when it is not an SQLite file in the folder (as given to the search)")
    args = parser.parse_args(argv)
    import optuna
    from optuna_dashboard import run_server

    from .names import shown
    from .studies import artifact_store, open_storage, shown_url

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study, pointer = load_study_for_command(args.study, args.storage)
    try:  # served through no symbolic link (safe_files.StudyArtifactStore)
        store = artifact_store(args.study)
    except ValueError as error:
        fail(str(error))
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(shown(f"optuna-dashboard for study {study.study_name!r} ({shown_url(pointer['storage'])}):") + "\n"
          + shown(f"  http://{host}:{args.port}/dashboard/   (Ctrl-C stops it)"), flush=True)
    try:
        run_server(open_storage(pointer["storage"], from_pointer=True), host=args.host, port=args.port,
                   artifact_store=store)
    except OSError as error:
        fail(f"cannot serve on {args.host}:{args.port}: {error.strerror or error}")
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
