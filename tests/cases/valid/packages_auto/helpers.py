"""A module beside the notebook: the steps that import it carry it."""

import statistics


class Box:
    def __init__(self, value):
        self.value = value


def total(values):
    return int(statistics.fsum(values))
