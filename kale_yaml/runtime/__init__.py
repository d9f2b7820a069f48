"""The step runtime: runs a step's notebook cells and hands variables to later steps.

Generated code carries these modules into every step, whose image has no kale-yaml: render/runtime_code.py
makes them the body of one function, `_kale_yaml_runtime()`, defined once per generated `.py`. So they
import only each other, the standard library and dill (NumPy, pandas, scikit-learn, PyTorch and Keras are
imported only for their values), and read the same inside a function: no `global` statement, no multi-line
string but docstrings, no name defined by two modules.
"""

from kale_yaml.runtime.errors import CellError, MetricError, StepError, UnserializableValueError
from kale_yaml.runtime.marshal import load_value, save_value
from kale_yaml.runtime.step import run_step

# The entry points: what `_kale_yaml_runtime()` returns, and the only names generated code uses.
__all__ = [
    "CellError",
    "MetricError",
    "StepError",
    "UnserializableValueError",
    "load_value",
    "run_step",
    "save_value",
]
