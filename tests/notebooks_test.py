"""The course notebooks run top to bottom on the current backend (quick mode).

Each notebook is executed headless with `KERAS_NLM_QUICK=1` (small sizes,
seconds instead of minutes) and the test fails on any error. They share one
kernel, its namespace emptied (`%reset -f`) before each notebook, which must
then import and define all it uses: the imports and compiled programs of the
notebooks before it are reused (JAX: 302 -> 217 s for the eight).
The committed copies are checked too: they carry the outputs of a full run.
"""

import os
import pathlib

import nbformat
import pytest
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

NOTEBOOKS = pathlib.Path(__file__).parents[1] / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
COURSE_ORDER = [
    "01_neuron",
    "02_embeddings",
    "03_training",
    "04_fixed_window_lm",
    "05_recurrent",
    "06_bidirectional",
    "07_seq2seq",
    "08_zoo_and_backends",
    "09_regularization",
]


def test_one_notebook_per_part_of_the_course_in_order():
    assert [p.stem for p in PATHS] == COURSE_ORDER


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_committed_notebook_carries_a_full_run(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    first = notebook.cells[0]
    assert first.cell_type == "markdown" and "goal" in first.source.lower()
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code, path.name
    for cell in code:
        assert cell.execution_count is not None, f"{path.name}: unexecuted cell"
        for output in cell.outputs:
            assert output.output_type != "error", f"{path.name}: {output.ename}"
            # A full run, not the quick mode CI uses.
            assert "QUICK MODE" not in str(output.get("text", "")), path.name


@pytest.fixture(scope="module")
def kernel():
    assert os.environ.get("KERAS_BACKEND"), "scripts/test.sh sets the backend"
    manager = KernelManager(kernel_name="python3")
    env = {**os.environ, "KERAS_NLM_QUICK": "1", "MPLBACKEND": "Agg"}
    manager.start_kernel(env=env, cwd=str(NOTEBOOKS))
    yield manager
    manager.shutdown_kernel(now=True)


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_notebook_runs_in_quick_mode(path, kernel):
    if not kernel.is_alive():  # a notebook before this one killed it
        kernel.restart_kernel(now=True)
    notebook = nbformat.read(path, as_version=4)
    notebook.cells.insert(0, nbformat.v4.new_code_cell("%reset -f"))
    # Raises `CellExecutionError` (with the cell and traceback) on any error.
    NotebookClient(
        notebook,
        km=kernel,
        timeout=600,
    ).execute()
    outputs = [
        str(output.get("text", ""))
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    ]
    assert any("QUICK MODE" in text for text in outputs), (
        f"{path.name} must print 'QUICK MODE' when KERAS_NLM_QUICK=1"
    )
