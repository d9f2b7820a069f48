"""Global random generators: a step that draws from one starts from the state the step before it left.

The analysis names a generator's state like a variable that no Python code can spell (`<numpy.random>`);
it arrives and leaves through artifact ports as variables do, but holds the generator's exact state
(random.getstate(), numpy.random.get_state(), torch.get_rng_state(): the CPU generator only), restored after
the prelude and the replayed settings, and taken when the step's cells have run.
"""

from __future__ import annotations

import pickle

from kale_yaml.runtime.files import import_library, join_path, make_folders, open_file

# Taken when the runtime loads, as files.py takes its functions: a cell may patch the pickle module.
_dump_state, _load_state = pickle.dump, pickle.load
# state name -> (module, the function that returns its state, the one that sets it)
_GENERATOR_STATE = {
    "<random>": ("random", "getstate", "setstate"),
    "<numpy.random>": ("numpy.random", "get_state", "set_state"),
    "<torch>": ("torch", "get_rng_state", "set_rng_state"),
}
_STATE_FILE = "state.pkl"


def is_generator(name: str) -> bool:
    return name in _GENERATOR_STATE


def restore_generator(name: str, path: str) -> None:
    """Set the generator to the state an earlier step saved at path (a folder)."""
    module, _get, set_state = _GENERATOR_STATE[name]
    with open_file(join_path(path, _STATE_FILE), "rb") as handle:
        state = _load_state(handle)
    getattr(import_library(module), set_state)(state)


def save_generator(name: str, path: str) -> None:
    """Save the generator's state into the folder path."""
    module, get_state, _set = _GENERATOR_STATE[name]
    make_folders(path)
    with open_file(join_path(path, _STATE_FILE), "wb") as handle:
        _dump_state(getattr(import_library(module), get_state)(), handle, protocol=4)
