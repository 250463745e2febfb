"""python -m ulsam_nas.dashboard: optuna-dashboard on a study folder, with its artifacts.

    python -m ulsam_nas.dashboard --study studies/mv2-synthetic [--port 8080] [--host 127.0.0.1]

Serves the study's storage (whatever --storage the search used) and the study's artifact store
(``<study>/artifacts``: reports and exported models), bound to 127.0.0.1 unless told otherwise.
It opens on the genome study (``<name>:genomes``, one trial per genome at its mean over seeds,
``report.genome_study``): its address is the one printed first, and the server's root leads there,
because optuna-dashboard's own Pareto front, History and Best Trials on the trial study are per
training, where one lucky seed can put a genome on the front.

The folder may have come from someone else, and the dashboard serves nothing it does not own:
the artifact store takes plain names only and reads or deletes nothing through a symbolic link
(``safe_files.StudyArtifactStore``), and optuna-dashboard's WSGI app goes out wrapped
(``safe_artifacts``), because its artifact routes send the content type the study's attributes
name (``text/html`` if the sender typed it) with ``Access-Control-Allow-Origin: *``, and it has no
setting for either. The wrapped app is served by bottle's ``run``, as optuna-dashboard's own
``run_server`` serves it, so everything else behaves as that command does.
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from .cli import ArgumentParser, fail, load_study_for_command

SHOWN_INLINE = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
"""Artifact types served as they are: passive images, the figures the dashboard shows. SVG is not
one of them: an SVG document can hold scripts."""

SHOWN_AS_TEXT = frozenset({"text/plain", "text/csv", "text/tab-separated-values", "text/markdown", "application/json",
                           "text/x-python"})
"""Artifact types served as ``text/plain``, which a browser displays and never runs: the report's
CSV tables, the export's ``arch.json`` and ``model.py``."""

ARTIFACT_HEADERS = (("X-Content-Type-Options", "nosniff"), ("Content-Security-Policy", "sandbox"))
"""On every artifact response: no browser guesses a type the server did not send, and a document
that is rendered anyway runs in a sandbox with no origin of its own, not the dashboard's."""

REPLACED = frozenset({"access-control-allow-origin", "content-encodings", "content-type", "content-disposition",
                      *(name.lower() for name, _ in ARTIFACT_HEADERS)})
"""optuna-dashboard's artifact headers the wrapper replaces: the CORS grant, the misspelled
``Content-Encodings`` (the study's encoding, which no browser reads), and the type."""


def artifact_headers(status: str, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The headers an artifact goes out with, ``headers`` being optuna-dashboard's. A passive image
    keeps its type; the product's text types become ``text/plain``; anything else (HTML, SVG,
    XML, scripts, an unknown or encoded type) is ``application/octet-stream`` as an attachment,
    which the browser saves (under the file name the dashboard's download link gives) instead of
    opening it on the dashboard's origin. An error answer is plain text."""
    given = {name.lower(): value for name, value in headers}
    kind = given.get("content-type", "").split(";")[0].strip().lower()
    encoded = bool(given.get("content-encodings"))
    if not status.startswith("2"):
        typed = [("Content-Type", "text/plain; charset=utf-8")]
    elif kind in SHOWN_INLINE and not encoded:
        typed = [("Content-Type", kind)]
    elif kind in SHOWN_AS_TEXT and not encoded:
        typed = [("Content-Type", "text/plain; charset=utf-8")]
    else:
        typed = [("Content-Type", "application/octet-stream"), ("Content-Disposition", "attachment")]
    return [(name, value) for name, value in headers if name.lower() not in REPLACED] + typed + list(ARTIFACT_HEADERS)


def safe_artifacts(app: Callable) -> Callable:
    """``app`` (optuna-dashboard's WSGI app) with its answers under ``/artifacts/`` sent with
    ``artifact_headers``; every other answer is ``app``'s own. The path is read as bottle routes
    it, with extra leading slashes dropped, so that no spelling of an artifact URL escapes."""

    def serve(environ: dict, start_response: Callable) -> Iterable[bytes]:
        if not ("/" + environ.get("PATH_INFO", "").lstrip("/")).startswith("/artifacts/"):
            return app(environ, start_response)

        def start(status: str, headers: list[tuple[str, str]], exc_info=None):
            return start_response(status, artifact_headers(status, headers), exc_info)

        return app(environ, start)

    return serve


def opening_on(app: Callable, page: str) -> Callable:
    """``app`` with its root (``/``, which optuna-dashboard sends to its list of studies) sent to ``page``."""

    def serve(environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "/") in ("", "/"):
            start_response("302 Found", [("Location", page), ("Content-Length", "0")])
            return [b""]
        return app(environ, start_response)

    return serve


def loopback(host: str) -> bool:
    """Whether ``host`` is this machine only: ``localhost`` or an address in 127.0.0.0/8 or ::1."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name (or "", every address): reachable from elsewhere as far as this command knows


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m ulsam_nas.dashboard", description="optuna-dashboard on a study folder.")
    parser.add_argument("--study", type=Path, required=True, help="study folder (as given to the search)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--storage", default=None,
                        help="the study's storage, when it is not an SQLite file in the folder (as given to the search)")
    args = parser.parse_args(argv)
    import optuna
    from bottle import run
    from optuna_dashboard import wsgi

    from .names import shown
    from .report.genome_study import genome_study_name
    from .studies import artifact_store, open_storage, shown_url

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study, pointer = load_study_for_command(args.study, args.storage)
    try:  # served through no symbolic link (safe_files.StudyArtifactStore)
        store = artifact_store(args.study)
    except ValueError as error:
        fail(str(error))
    host = f"[{args.host}]" if ":" in args.host else args.host
    storage = open_storage(pointer["storage"], from_pointer=True)
    genomes_name = genome_study_name(study.study_name)
    try:
        genomes_id = storage.get_study_id_from_name(genomes_name)
    except KeyError:
        genomes_id = None
    trials_page = f"/dashboard/studies/{storage.get_study_id_from_name(study.study_name)}"
    first_page = trials_page if genomes_id is None else f"/dashboard/studies/{genomes_id}"
    lines = [f"optuna-dashboard for study {study.study_name!r} ({shown_url(pointer['storage'])}), Ctrl-C stops it:"]
    if genomes_id is not None:
        lines.append(f"  http://{host}:{args.port}{first_page}   genome means over seeds (study {genomes_name!r}): start here")
    lines.append(f"  http://{host}:{args.port}{trials_page}   every training (study {study.study_name!r})")
    if genomes_id is None:
        lines.append(f"  (the genome study {genomes_name!r} appears at the search's first dashboard refresh)")
    print("\n".join(map(shown, lines)), flush=True)
    if not loopback(args.host):
        print(shown(f"warning: --host {args.host} exposes the dashboard: anyone who can reach port {args.port} can read, "
                    f"change and delete every study in its storage, their trials and artifacts, with no password"),
              flush=True)
    try:
        app = opening_on(safe_artifacts(wsgi(storage, artifact_store=store)), first_page)
        run(app, host=args.host, port=args.port)
    except OSError as error:
        fail(f"cannot serve on {args.host}:{args.port}: {error.strerror or error}")
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
