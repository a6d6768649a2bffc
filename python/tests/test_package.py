"""The installed package: layout, re-exports, version, typing marker."""

from pathlib import Path

import pointsman
import pointsman._native as native


def test_native_module_is_private_and_reexported():
    assert native.__name__ == "pointsman._native"
    public = {n for n in dir(native) if not n.startswith("_")} | {"__version__"}
    assert set(pointsman.__all__) == public
    for name in pointsman.__all__:
        assert getattr(pointsman, name) is getattr(native, name)


def test_ships_stubs_and_the_typing_marker():
    pkg = Path(pointsman.__file__).parent
    assert (pkg / "py.typed").is_file()
    assert (pkg / "_native.pyi").is_file()
    assert Path(native.__file__).name.startswith("_native.")


def test_version_and_constants():
    assert pointsman.__version__.count(".") == 2
    assert pointsman.DEFAULT_EMBEDDING_MODEL == "all-MiniLM-L6-v2"
    assert pointsman.num_threads() >= 1


def test_classes_live_in_the_public_package():
    for cls in [pointsman.Router, pointsman.KnnRouter, pointsman.Decision, pointsman.ShapeError]:
        assert cls.__module__ == "pointsman", cls
    assert issubclass(pointsman.KnnRouter, pointsman.Router)
    assert issubclass(pointsman.MfRouter, pointsman.Router)
    assert issubclass(pointsman.BaselineRouter, pointsman.Router)
