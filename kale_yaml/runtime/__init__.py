"""The step runtime that generated code carries: imports only the standard library and dill."""
