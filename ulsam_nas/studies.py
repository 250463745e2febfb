"""Where a study lives: ``<study dir>/study.json`` names its storage and study, so the report,
dashboard and export commands find it from the folder alone, whatever the storage."""

from __future__ import annotations

import json
from pathlib import Path

import optuna

POINTER = "study.json"
ARTIFACTS = "artifacts"


class StudyNotFound(ValueError):
    """No usable study at the given folder or storage."""


def write_pointer(study_dir: Path, storage_url: str, study_name: str, space: str) -> None:
    study_dir.mkdir(parents=True, exist_ok=True)
    (study_dir / POINTER).write_text(json.dumps({"storage": storage_url, "study_name": study_name, "space": space},
                                                indent=2) + "\n")


def read_pointer(study_dir: Path) -> dict:
    path = study_dir / POINTER
    if not path.is_file():
        if not study_dir.is_dir():
            raise StudyNotFound(f"{study_dir}: no such folder")
        raise StudyNotFound(f"{study_dir}: no study here (no {POINTER}; run python -m ulsam_nas.search first)")
    try:
        pointer = json.loads(path.read_text())
        return {"storage": str(pointer["storage"]), "study_name": str(pointer["study_name"]),
                "space": str(pointer.get("space", ""))}
    except (ValueError, KeyError, TypeError) as error:
        raise StudyNotFound(f"{path}: not a study pointer ({error})") from None


def open_storage(url: str) -> optuna.storages.RDBStorage:
    # A generous SQLite timeout: the dashboard may read while the search writes.
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)


def load_study(study_dir: Path) -> tuple[optuna.Study, dict]:
    """The study a folder points to, and the pointer; StudyNotFound if it does not open."""
    pointer = read_pointer(study_dir)
    try:
        storage = open_storage(pointer["storage"])
        study = optuna.load_study(study_name=pointer["study_name"], storage=storage)
    except KeyError:
        raise StudyNotFound(f"storage {pointer['storage']} has no study {pointer['study_name']!r}") from None
    except Exception as error:  # noqa: BLE001 - SQLAlchemy and drivers raise many kinds
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise StudyNotFound(f"cannot open storage {pointer['storage']}: {message}") from None
    return study, pointer


def artifact_store(study_dir: Path) -> optuna.artifacts.FileSystemArtifactStore:
    path = study_dir / ARTIFACTS
    path.mkdir(parents=True, exist_ok=True)
    return optuna.artifacts.FileSystemArtifactStore(str(path))
