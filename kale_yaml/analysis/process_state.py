"""Process state that is not a variable: the table of what sets it, and how a later step gets it back.

A pipeline step runs in its own process, so what a notebook cell leaves in the process (an import, a library
setting, an environment variable, a seeded random generator, a file written by `%%writefile`) is lost between
steps unless it is carried. Three ways, chosen by kind:
- imports are replayed: a name an earlier step bound by a top-level `import` is imported again at the start
  of a later step that reads it, instead of travelling as a value (`import_bindings`);
- settings are replayed: a top-level statement that the table below recognises as a setter (`SETTERS`,
  `SETTING_TARGETS`) runs again at the start of every later step, in notebook order, when every name it reads
  is one the later step has there (parameters, the prelude's names, replayed imports);
- global random generators travel as data (`GENERATORS`): a step that draws from one starts from the state the
  step before it (in notebook order) that seeded or drew from it left, through a hidden artifact.
Names are matched by what they were imported as (`qualified`): `np.random.seed` after `import numpy as np`
is `numpy.random.seed`; a name not bound by an import is never a setter.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass

from kale_yaml.analysis.scopes import Deferred


@dataclass(frozen=True, order=True)
class Replay:
    """A statement an earlier step ran that a later step runs again at its start, in notebook order."""

    cell: int
    line: int
    source: str
    what: str  # "import", what a setting sets (as `SETTERS` says it), or "file PATH" for `%%writefile`
    needs: tuple[Replay, ...] = ()  # the imports a setting reads, replayed before it
    parameters: tuple[str, ...] = ()  # the pipeline parameters a setting reads


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# -- settings: re-applied at the start of every later step ------------------------------------------------
# Calls, by qualified name (or a prefix ending in "."), and what they set, as `graph` says it.
SETTERS: dict[str, str] = {
    "sklearn.set_config": "scikit-learn config",
    "sklearn._config.set_config": "scikit-learn config",
    "pandas.set_option": "pandas option",
    "pandas.reset_option": "pandas option",
    "numpy.set_printoptions": "numpy print options",
    "numpy.seterr": "numpy error handling",
    "warnings.filterwarnings": "warnings filter",
    "warnings.simplefilter": "warnings filter",
    "warnings.resetwarnings": "warnings filter",
    "matplotlib.use": "matplotlib backend",
    "matplotlib.rc": "matplotlib rcParams",
    "matplotlib.rcParams.update": "matplotlib rcParams",
    "matplotlib.style.use": "matplotlib style",
    "matplotlib.pyplot.rc": "matplotlib rcParams",
    "matplotlib.pyplot.rcParams.update": "matplotlib rcParams",
    "matplotlib.pyplot.style.use": "matplotlib style",
    "matplotlib.pyplot.switch_backend": "matplotlib backend",
    "seaborn.set": "seaborn theme",
    "seaborn.set_theme": "seaborn theme",
    "seaborn.set_style": "seaborn theme",
    "seaborn.set_context": "seaborn theme",
    "seaborn.set_palette": "seaborn theme",
    "os.environ.update": "environment variable",
    "os.environ.setdefault": "environment variable",
    "os.environ.pop": "environment variable",
    "os.putenv": "environment variable",
    "os.unsetenv": "environment variable",
    "os.chdir": "working directory",
    "os.umask": "file mode mask",
    "sys.path.append": "sys.path",
    "sys.path.insert": "sys.path",
    "sys.path.extend": "sys.path",
    "sys.path.remove": "sys.path",
    "sys.setrecursionlimit": "recursion limit",
    "logging.basicConfig": "logging config",
    "logging.disable": "logging config",
    "logging.captureWarnings": "logging config",
    "locale.setlocale": "locale",
    "socket.setdefaulttimeout": "socket timeout",
    "decimal.setcontext": "decimal context",
    "torch.set_printoptions": "torch print options",
    "torch.set_default_dtype": "torch default dtype",
    "torch.set_num_threads": "torch threads",
    "torch.use_deterministic_algorithms": "torch determinism",
    "torch.set_grad_enabled": "torch autograd",
    "tensorflow.random.set_seed": "tensorflow seed",
    "tensorflow.keras.utils.set_random_seed": "tensorflow seed",
    "keras.utils.set_random_seed": "tensorflow seed",
    "tensorflow.get_logger().setLevel": "tensorflow logging",
}
# Assignments (`x[k] = v`, `x.a = v`, `del x[k]`) to these, by qualified name of the target's base.
SETTING_TARGETS: dict[str, str] = {
    "os.environ": "environment variable",
    "pandas.options.": "pandas option",
    "matplotlib.rcParams": "matplotlib rcParams",
    "matplotlib.pyplot.rcParams": "matplotlib rcParams",
    "torch.backends.": "torch backend flags",
    "sys.path": "sys.path",
    "decimal.getcontext().": "decimal context",
}


# -- global random generators: their state travels -------------------------------------------------------
@dataclass(frozen=True)
class Generator:
    """A process-wide random generator whose state a step hands to the next step that draws from it."""

    variable: str  # how the analysis, `graph` and the runtime name its state: never a Python name
    port: str  # the stem of its artifact ports
    module: str  # the module whose functions draw from it


GENERATORS: tuple[Generator, ...] = (
    Generator("<random>", "rng_random", "random"),
    Generator("<numpy.random>", "rng_numpy", "numpy.random"),
    Generator("<torch>", "rng_torch", "torch"),
)
GENERATOR_VARIABLES = frozenset(g.variable for g in GENERATORS)
_RANDOM, _NUMPY, _TORCH = GENERATORS
SEEDS: dict[str, Generator] = {
    "random.seed": _RANDOM,
    "random.setstate": _RANDOM,
    "numpy.random.seed": _NUMPY,
    "numpy.random.set_state": _NUMPY,
    "torch.manual_seed": _TORCH,
    "torch.seed": _TORCH,
    "torch.random.manual_seed": _TORCH,
    "torch.random.seed": _TORCH,
    "torch.set_rng_state": _TORCH,
    "torch.random.set_rng_state": _TORCH,
}
# numpy.random's own objects, which do not use the global state.
_NUMPY_OWN_GENERATORS = _words(
    "default_rng Generator RandomState SeedSequence BitGenerator MT19937 PCG64 PCG64DXSM Philox SFC64"
)
_RANDOM_DRAWS = _words(
    "random uniform triangular randint randrange choice choices shuffle sample gauss normalvariate "
    "lognormvariate expovariate vonmisesvariate gammavariate betavariate paretovariate weibullvariate "
    "getrandbits randbytes binomialvariate getstate"
)
_TORCH_DRAWS = _words(
    "rand rand_like randn randn_like randint randint_like randperm normal bernoulli multinomial poisson "
    "get_rng_state"
)
# scikit-learn functions that draw from numpy's global generator unless given random_state.
_SKLEARN_DRAWS = _words("train_test_split shuffle resample")
# scikit-learn classes that take random_state, so draw from numpy's global generator without it (when fitted,
# or when splitting). A table, not every class: a class missing here is taken for one that never draws.
SKLEARN_RANDOM_CLASSES = _words(
    "RandomForestClassifier RandomForestRegressor ExtraTreesClassifier ExtraTreesRegressor "
    "GradientBoostingClassifier GradientBoostingRegressor HistGradientBoostingClassifier "
    "HistGradientBoostingRegressor DecisionTreeClassifier DecisionTreeRegressor ExtraTreeClassifier "
    "ExtraTreeRegressor AdaBoostClassifier AdaBoostRegressor BaggingClassifier BaggingRegressor "
    "IsolationForest RandomTreesEmbedding SGDClassifier SGDRegressor SGDOneClassSVM Perceptron "
    "PassiveAggressiveClassifier PassiveAggressiveRegressor MLPClassifier MLPRegressor BernoulliRBM "
    "LinearSVC LinearSVR KMeans MiniBatchKMeans BisectingKMeans SpectralClustering SpectralBiclustering "
    "SpectralCoclustering AffinityPropagation GaussianMixture BayesianGaussianMixture PCA KernelPCA "
    "TruncatedSVD NMF MiniBatchNMF FastICA SparsePCA MiniBatchSparsePCA DictionaryLearning "
    "MiniBatchDictionaryLearning FactorAnalysis LatentDirichletAllocation TSNE MDS SpectralEmbedding "
    "LocallyLinearEmbedding GaussianRandomProjection SparseRandomProjection RBFSampler Nystroem "
    "SkewedChi2Sampler PolynomialCountSketch ShuffleSplit StratifiedShuffleSplit GroupShuffleSplit "
    "RandomizedSearchCV HalvingGridSearchCV HalvingRandomSearchCV DummyClassifier RANSACRegressor "
    "TheilSenRegressor QuantileTransformer IterativeImputer KBinsDiscretizer GaussianProcessClassifier "
    "GaussianProcessRegressor ClassifierChain RegressorChain OutputCodeClassifier"
)


def generator_event(call: ast.Call, name: str | None) -> tuple[Generator, bool] | None:
    """(generator, seeds it) when the call with qualified name `name` seeds or draws from a global generator.

    Draws: the random module's functions, numpy.random's (but its own generator objects), torch's random
    tensor functions and torch.nn's layers (they initialise their weights), and scikit-learn's classes of
    `SKLEARN_RANDOM_CLASSES`, `make_*` data sets and sampling functions called without `random_state` (or
    with `random_state=None`): such estimators draw from numpy's global generator when fitted.
    """
    if name is None:
        return None
    if name in SEEDS:
        return SEEDS[name], True
    module, _, last = name.rpartition(".")
    if module == "random" and last in _RANDOM_DRAWS:
        return _RANDOM, False
    if module == "numpy.random" and last not in _NUMPY_OWN_GENERATORS:
        return _NUMPY, False
    if module in ("torch", "torch.random") and last in _TORCH_DRAWS:
        return _TORCH, False
    if (module.startswith("torch.nn") and last[:1].isupper()) or module == "torch.nn.init":
        return _TORCH, False
    sampler = last in SKLEARN_RANDOM_CLASSES or last in _SKLEARN_DRAWS or last.startswith("make_")
    if name.startswith("sklearn.") and sampler and not _seeded(call):
        return _NUMPY, False
    return None


def generators_used(function: ast.FunctionDef | ast.AsyncFunctionDef, origins: Origins) -> Deferred:
    """What a function's draws and seeds do where it is called: a draw reads and changes the generator's
    state, a seed only sets it (names resolved with the imports made before the function is defined)."""
    reads: set[str] = set()
    sets: set[str] = set()
    for node in ast.walk(function):
        if isinstance(node, ast.Call):
            event = generator_event(node, qualified(node.func, origins))
            if event is not None:
                (sets if event[1] else reads).add(event[0].variable)
    return Deferred(needs=frozenset(reads), binds=frozenset(reads | sets))


def unseeded_estimator(call: ast.Call, name: str | None) -> bool:
    """A scikit-learn object built without random_state: fitting it later, or passing it on, may draw."""
    is_class = bool(
        name and name.startswith("sklearn.") and name.rpartition(".")[2] in SKLEARN_RANDOM_CLASSES
    )
    return is_class and not _seeded(call)


def _seeded(call: ast.Call) -> bool:
    for keyword in call.keywords:
        if keyword.arg == "random_state":
            return not (isinstance(keyword.value, ast.Constant) and keyword.value.value is None)
    return False


# -- names ---------------------------------------------------------------------------------------------------
Origins = Callable[[str], str | None]  # a name -> what an import bound it to (`numpy`), or None


def qualified(node: ast.AST, origins: Origins) -> str | None:
    """`numpy.random.seed` for `np.random.seed` when `np` was bound by `import numpy as np`; calls in the
    chain are kept as `()` (`tensorflow.get_logger().setLevel`); None when the root is no imported name."""
    parts: list[str] = []
    while True:
        if isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        elif isinstance(node, ast.Call) and not node.args and not node.keywords and parts:
            parts.append("()")
            node = node.func
        else:
            break
    text = origins(node.id) if isinstance(node, ast.Name) else None
    if text is None:
        return None
    for part in reversed(parts):
        text = text + part if part == "()" else f"{text}.{part}"
    return text


def import_bindings(node: ast.Import | ast.ImportFrom) -> list[tuple[str, str, str]]:
    """(name bound, what it is as a dotted path, the import statement that binds only it) per alias."""
    found = []
    for alias in node.names:
        if alias.name == "*":
            continue
        if isinstance(node, ast.Import):
            bound = alias.asname or alias.name.split(".")[0]
            origin = alias.name if alias.asname else bound
            statement: ast.stmt = ast.Import(names=[alias])
        else:
            bound = alias.asname or alias.name
            base = "." * node.level + (node.module or "")
            origin = f"{base}.{alias.name}" if node.module else base + alias.name
            statement = ast.ImportFrom(module=node.module, names=[alias], level=node.level)
        found.append((bound, origin, ast.unparse(statement)))
    return found


def setting_label(statement: ast.stmt, origins: Origins) -> str | None:
    """What a statement sets, as the table says it, or None when it is no setter the table knows."""
    if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call):
        return _lookup(SETTERS, qualified(statement.value.func, origins))
    targets: list[ast.expr] = []
    if isinstance(statement, ast.Assign | ast.Delete):
        targets = list(statement.targets)
    elif isinstance(statement, ast.AugAssign | ast.AnnAssign):
        targets = [statement.target]
    labels = set()
    for target in targets:
        if not isinstance(target, ast.Attribute | ast.Subscript):
            return None
        base = target.value if isinstance(target, ast.Subscript) else target
        label = _lookup(SETTING_TARGETS, qualified(base, origins))
        if label is None:
            return None
        labels.add(label)
    return sorted(labels)[0] if labels else None


def _lookup(table: dict[str, str], name: str | None) -> str | None:
    if name is None:
        return None
    if name in table:
        return table[name]
    for key, label in table.items():
        if key.endswith(".") and name.startswith(key):
            return label
    return None


def notebook_state(sources: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """(cell number, what it sets) for the top-level setters and seeds of code cells, given as (number,
    executable source) in notebook order: what `cells` shows. Cells that do not parse are passed over."""
    origins: dict[str, str] = {}
    found: list[tuple[int, str]] = []
    for number, source in sources:
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        for statement in tree.body:
            if isinstance(statement, ast.Import | ast.ImportFrom):
                origins.update((bound, origin) for bound, origin, _ in import_bindings(statement))
            what = setting_label(statement, origins.get)
            if what is None and isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call):
                event = generator_event(statement.value, qualified(statement.value.func, origins.get))
                what = f"{event[0].module} seed" if event is not None and event[1] else None
            if what is not None and (number, what) not in found:
                found.append((number, what))
    return found


def port_stem(variable: str) -> str | None:
    """The stem of a generator state's artifact ports (`rng_numpy`), or None for a notebook variable."""
    return next((g.port for g in GENERATORS if g.variable == variable), None)
