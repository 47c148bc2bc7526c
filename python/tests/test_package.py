"""The package as installed: import paths, errors, typing files, the commands it installs."""

from __future__ import annotations

import importlib
import inspect
import pathlib
import subprocess
import sys

import pytest

import earthcatalog as ec
from earthcatalog import errors

from conftest import BIN_DIR


def test_documented_import_paths_resolve() -> None:
    from earthcatalog import CatalogLocked, EarthCatalog, S3Lock, ingest, open  # noqa: F401
    from earthcatalog.maintenance.compact import compact_warehouse, main

    params = list(inspect.signature(compact_warehouse).parameters)
    assert params[:5] == ["warehouse_path", "catalog_path", "threshold", "use_lock", "dry_run"]
    sig = inspect.signature(compact_warehouse)
    assert sig.parameters["threshold"].default == 2
    assert sig.parameters["use_lock"].default is False
    assert sig.parameters["dry_run"].default is False
    assert callable(main)
    assert ec.__version__


def test_every_error_class_is_an_earthcatalog_error_and_the_lock_alias_holds() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.EarthCatalogError), name
        assert cls.__doc__, name
    assert ec.CatalogLocked is errors.LockHeld
    assert issubclass(errors.InvalidArgument, ValueError)


def test_library_errors_arrive_as_their_class_with_the_library_message(
    tmp_path: pathlib.Path, example: ec.EarthCatalog
) -> None:
    missing = tmp_path / "nope.db"
    with pytest.raises(errors.NotFound, match="does not exist"):
        ec.open(catalog=str(missing), warehouse=str(tmp_path)).info()
    with pytest.raises(errors.InvalidArgument, match="datetime"):
        list(example.search(datetime="2020-13-45").items())
    with pytest.raises(errors.InvalidArgument, match="not a search parameter"):
        ec.open(catalog=str(missing), warehouse=str(tmp_path)).search(bboxx=[0, 0, 1, 1])
    with pytest.raises(errors.InvalidArgument, match="storage_options"):
        ec.open(base=str(tmp_path), storage_options={"regoin": "x"})


def test_typing_files_ship_with_the_package() -> None:
    root = pathlib.Path(ec.__file__).parent
    assert (root / "py.typed").exists()
    assert (root / "_native.pyi").exists()


def test_public_names_have_docstrings() -> None:
    modules = ["earthcatalog", "earthcatalog.catalog", "earthcatalog.search", "earthcatalog.lock",
               "earthcatalog.maintenance.compact", "earthcatalog.bulk", "earthcatalog.errors"]
    missing = []
    for name in modules:
        module = importlib.import_module(name)
        assert module.__doc__, name
        for attr in getattr(module, "__all__", []):
            obj = getattr(module, attr)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                if not obj.__doc__:
                    missing.append(f"{name}.{attr}")
                if inspect.isclass(obj):
                    for meth_name, meth in vars(obj).items():
                        if not meth_name.startswith("_") and callable(meth) and not meth.__doc__:
                            missing.append(f"{name}.{attr}.{meth_name}")
    assert not missing, missing


def test_the_stubs_and_the_package_pass_mypy_strict(tmp_path: pathlib.Path) -> None:
    pytest.importorskip("mypy")
    # From an empty directory mypy checks the installed package (it ships py.typed).
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "-p", "earthcatalog"],
        capture_output=True, text=True, cwd=tmp_path, check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_wheel_installs_the_earthcatalog_command(tmp_path: pathlib.Path) -> None:
    exe = BIN_DIR / "earthcatalog"
    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=False)
    assert version.returncode == 0 and version.stdout.startswith("earthcatalog "), version
    missing = subprocess.run(
        [str(exe), "info", "--catalog", str(tmp_path / "none.db")], capture_output=True, text=True, check=False
    )
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr
    bad_flag = subprocess.run([str(exe), "compact", "--nope"], capture_output=True, text=True, check=False)
    assert bad_flag.returncode == 2
    module = subprocess.run([sys.executable, "-m", "earthcatalog", "--help"], capture_output=True, text=True, check=False)
    assert module.returncode == 0 and "ingest" in module.stdout
