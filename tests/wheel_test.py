"""A regular install (a wheel, not the checkout) carries the zoo: its presets
load offline in a fresh virtual environment."""

import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig
import textwrap

import keras
import pytest

CHECKOUT = pathlib.Path(__file__).resolve().parent.parent

LOAD = textwrap.dedent(
    """
    import pathlib, sys
    import keras_nlm
    from keras_nlm.models import RNNLM

    here = pathlib.Path(keras_nlm.__file__).resolve()
    assert here.is_relative_to(sys.prefix), here  # the wheel's copy
    model = RNNLM.from_preset("lstm_ptb_small")
    print(model.generate("the company said", max_length=6))
    """
)


def _source(destination):
    """The checkout's files, as a clean clone has them: a build in the
    checkout would pack whatever an earlier one left in its `build/`."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=CHECKOUT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split("\0")
    for name in filter(None, files):
        if (CHECKOUT / name).exists():  # not deleted since
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(CHECKOUT / name, destination / name, follow_symlinks=False)
    return destination


# The wheel's files do not depend on the backend, and zoo_test loads every
# preset under each: built and installed in one backend's run.
@pytest.mark.skipif(
    keras.backend.backend() != "torch", reason="the wheel is built under torch"
)
def test_a_wheel_installed_in_a_fresh_environment_loads_a_zoo_preset(tmp_path):
    source = _source(tmp_path / "source")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps"]
        + ["--no-build-isolation", "-q", "-w", str(tmp_path / "dist")],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = (tmp_path / "dist").glob("keras_nlm-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "install", "--no-deps"]
        + ["-q", "--no-compile", str(wheel)],
        check=True,
    )
    # keras-nlm's dependencies (Keras, the backends) come from this
    # environment: a line of a .pth file adds its folder to the path without
    # running its .pth files, so the checkout's editable install stays out.
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    dependencies = sysconfig.get_paths()["purelib"]
    pathlib.Path(site, "dependencies.pth").write_text(dependencies + "\n")
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    env["KERAS_BACKEND"] = keras.backend.backend()
    done = subprocess.run(
        [python, "-c", LOAD],
        cwd=tmp_path,  # outside the checkout
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().startswith("the company said")
