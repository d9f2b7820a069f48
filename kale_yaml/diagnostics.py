"""The catalogue: every kind of problem kale-yaml reports, each with a stable code and a short name.

As in pyflakes, a kind of message is made in one place. A site picks its kind here and adds the specifics
(`UNKNOWN_KEY.at(file, message, line=..., col=..., key=...)`), so no problem reaches a user without a code.
Codes never change meaning and are never reused; they are grouped by the stage that finds the problem:

    KY1xx  the sidecar's file and its YAML            KY6xx  cluster settings and volumes
    KY2xx  the schema                                 KY7xx  build: compiling and writing the pipeline
    KY3xx  notebook, selectors, ownership, names,     KY8xx  run (on this machine) and submit (to a server)
           parameters (resolve)                       KY9xx  authoring: init, import-kale, cells
    KY4xx  analysis of the cells' code
    KY5xx  the plan (the DAG)

docs/diagnostics.md describes every code with an example.
"""

from __future__ import annotations

from dataclasses import dataclass

from kale_yaml.errors import Diagnostic, Severity


@dataclass(frozen=True)
class Kind:
    """One kind of problem: `KY201 unknown-key`."""

    code: str
    name: str
    summary: str  # one line: what it means
    severity: Severity = "error"

    def at(
        self,
        file: str,
        message: str,
        *,
        line: int | None = None,
        col: int | None = None,
        key: str | None = None,
        cell: int | None = None,
    ) -> Diagnostic:
        """A diagnostic of this kind, located in `file` (at a line and column, a key path, or a cell)."""
        if CATALOGUE.get(self.code) is not self:
            raise ValueError(f"{self.code} {self.name} is not in the catalogue")
        return Diagnostic(
            file=file,
            line=line,
            col=col,
            key=key,
            message=message,
            cell=cell,
            severity=self.severity,
            code=self.code,
        )

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


CATALOGUE: dict[str, Kind] = {}


def _kind(code: str, name: str, summary: str, severity: Severity = "error") -> Kind:
    if code in CATALOGUE or any(k.name == name for k in CATALOGUE.values()):
        raise ValueError(f"{code} {name}: a code and a name each name one kind")
    CATALOGUE[code] = Kind(code, name, summary, severity)
    return CATALOGUE[code]


# -- KY1xx: the sidecar's file and its YAML (load) ----------------------------------------------------------
NO_SIDECAR = _kind("KY101", "no-sidecar", "the sidecar a command names does not exist")
UNREADABLE_SIDECAR = _kind("KY102", "unreadable-sidecar", "the sidecar is not a regular file one can read")
SIDECAR_NOT_UTF8 = _kind("KY103", "sidecar-not-utf8", "the sidecar is not UTF-8 text")
INVALID_YAML = _kind("KY104", "invalid-yaml", "the sidecar is not valid YAML")
SEVERAL_DOCUMENTS = _kind("KY105", "several-documents", "the sidecar holds more than one YAML document")
EMPTY_SIDECAR = _kind("KY106", "empty-sidecar", "the sidecar holds nothing")
YAML_TOO_DEEP = _kind("KY107", "yaml-too-deep", "values nest deeper than any sidecar needs")
RECURSIVE_ALIAS = _kind("KY108", "recursive-alias", "a YAML alias is used inside the value it names")
YAML_TOO_LARGE = _kind("KY109", "yaml-too-large", "aliases expand the sidecar far beyond any pipeline's size")
INVALID_SCALAR = _kind("KY110", "invalid-scalar", "a tagged YAML value cannot be read as its type")
MERGE_KEY = _kind("KY111", "merge-key", "a YAML merge key (<<), which kale-yaml does not support")
COMPLEX_KEY = _kind("KY112", "complex-key", "a mapping key that is not a plain scalar")
DUPLICATE_KEY = _kind("KY113", "duplicate-key", "a key written twice in one mapping")

# -- KY2xx: the schema (load) -------------------------------------------------------------------------------
UNKNOWN_KEY = _kind("KY201", "unknown-key", "a key the schema does not know at this place")
MISSING_KEY = _kind("KY202", "missing-key", "a required key is missing")
WRONG_TYPE = _kind("KY203", "wrong-type", "a value of the wrong type")
KEY_NOT_TEXT = _kind("KY204", "key-not-text", "a key that must be text is a number or boolean")
EXCLUSIVE_KEYS = _kind("KY205", "exclusive-keys", "keys that exclude each other are used together")
DUPLICATE_ITEM = _kind("KY206", "duplicate-item", "a list that must hold each item once repeats one")
INVALID_VALUE = _kind("KY207", "invalid-value", "a value of the right type that the schema does not allow")
SELECTOR_TOO_DEEP = _kind("KY208", "selector-too-deep", "from/to selectors nested more than 8 levels deep")

# -- KY3xx: notebook, selectors, ownership, names, parameters (resolve) -------------------------------------
BAD_NOTEBOOK_PATH = _kind("KY301", "bad-notebook-path", "`notebook:` is not a possible file name")
NOTEBOOK_OUTSIDE = _kind(
    "KY302", "notebook-outside-folder", "a relative `notebook:` leaves the sidecar's folder"
)
NOTEBOOK_NOT_FOUND = _kind("KY303", "notebook-not-found", "the notebook does not exist")
UNREADABLE_NOTEBOOK = _kind("KY304", "unreadable-notebook", "the notebook is not a regular file one can read")
NOTEBOOK_NOT_UTF8 = _kind("KY305", "notebook-not-utf8", "the notebook is not UTF-8 text")
NOT_A_NOTEBOOK = _kind(
    "KY306", "not-a-notebook", "the notebook is not an nbformat 4 notebook kale-yaml can read"
)
NOT_PYTHON = _kind("KY307", "not-python", "the notebook's kernel is not Python")

NOT_A_SELECTOR = _kind("KY310", "not-a-selector", "a value that is no cell selector")
BAD_CELL_RANGE = _kind("KY311", "bad-cell-range", 'text that is not a cell number or a range like "3-6"')
CELL_ZERO = _kind("KY312", "cell-zero", "a cell number below 1")
BACKWARDS_RANGE = _kind("KY313", "backwards-range", "a range or from/to that ends before it starts")
PAST_LAST_CELL = _kind("KY314", "past-last-cell", "a cell number past the notebook's last cell")
UNKNOWN_CELL_ID = _kind("KY315", "unknown-cell-id", "no cell has the selected id")
DUPLICATE_CELL_ID = _kind("KY316", "duplicate-cell-id", "the selected id is on several cells")
UNKNOWN_HEADING = _kind("KY317", "unknown-heading", "no markdown heading has the selected text")
AMBIGUOUS_HEADING = _kind("KY318", "ambiguous-heading", "the selected heading appears in several cells")
BAD_REGEX = _kind("KY319", "bad-regex", "a `match:` selector that is not a valid regular expression")
NO_MATCH = _kind("KY320", "no-match", "a `match:` selector that matches no cell")
NO_CODE_CELLS = _kind("KY321", "no-code-cells", "a step selects only markdown or raw cells")
ALL_SKIPPED = _kind("KY322", "all-skipped", "every code cell a step selects is under `skip`")

TWO_OWNERS = _kind("KY330", "two-owners", "a code cell claimed by two owners")
UNOWNED_CELL = _kind(
    "KY331", "unowned-cell", "a code cell that belongs to no step, the prelude, parameters or skip"
)
NOTEBOOK_ORDER = _kind("KY332", "notebook-order", "steps whose cells do not follow the notebook's order")

RESERVED_STEP_NAME = _kind("KY340", "reserved-step-name", "a step named `prelude` or `parameter`")
DUPLICATE_STEP_NAME = _kind("KY341", "duplicate-step-name", "two steps with one name")
AFTER_ITSELF = _kind("KY342", "after-itself", "a step listed in its own `after:`")
UNKNOWN_STEP = _kind("KY343", "unknown-step", "`after:` or `metrics.step` names no step")

PARAMETER_CELL_SYNTAX = _kind("KY350", "parameter-cell-syntax", "a parameter cell that Python cannot parse")
PARAMETER_STATEMENT = _kind(
    "KY351", "parameter-statement", "a parameter cell line other than `name = literal`"
)
PARAMETER_NOT_LITERAL = _kind(
    "KY352", "parameter-not-literal", "a parameter set to something other than a literal"
)
PARAMETER_UNBUILDABLE = _kind(
    "KY353", "parameter-unbuildable", "a literal Python cannot build (a list as a dict key)"
)
PARAMETER_VALUE = _kind("KY354", "parameter-value", "a parameter value KFP cannot pass")
PARAMETER_ANNOTATION = _kind(
    "KY355", "parameter-annotation", "a parameter's annotation disagrees with its value"
)
PARAMETER_NAME = _kind("KY356", "parameter-name", "a parameter name KFP does not accept")
RESERVED_PARAMETER_NAME = _kind(
    "KY357", "reserved-parameter-name", "a parameter name the generated code uses"
)
UNKNOWN_PARAMETER = _kind("KY358", "unknown-parameter", "`--param` names no parameter of the pipeline")
BAD_PARAM_VALUE = _kind(
    "KY359", "bad-param-value", "a `--param` value that does not fit the parameter's type"
)

# -- KY4xx: analysis of the cells' code ---------------------------------------------------------------------
SYNTAX_ERROR = _kind("KY401", "syntax-error", "a code cell that is not valid Python")
CELL_MAGIC = _kind("KY402", "cell-magic", "a cell magic that cannot run in a pipeline step")
TOO_DEEP_TO_COMPILE = _kind("KY403", "too-deep-to-compile", "code nested too deeply for Python to compile")
TOO_DEEP_TO_ANALYSE = _kind("KY404", "too-deep-to-analyse", "a statement nested too deeply for the analysis")
UNDEFINED_NAME = _kind("KY405", "undefined-name", "a name read before any earlier cell defines it")
DELETED_NAME = _kind("KY406", "deleted-name", "a name read after a `del` removed it")
NOT_A_VARIABLE = _kind(
    "KY407", "not-a-variable", "an `inputs:`/`outputs:` entry that is no Python variable name"
)
UNDEFINED_INPUT = _kind("KY408", "undefined-input", "an `inputs:` entry no earlier cell defines")
LEFT_OUT = _kind("KY409", "left-out", "an IPython line (magic, shell) left out of the step", "warning")
STATE_NOT_CARRIED = _kind(
    "KY420", "state-not-carried", "process state a step sets that later steps do not get", "warning"
)

# -- KY5xx: the plan ----------------------------------------------------------------------------------------
CYCLE = _kind("KY501", "cycle", "`after:` closes a cycle of steps")
UNKNOWN_METRIC = _kind("KY502", "unknown-metric", "a metric that is no variable of the metrics step")
UNKNOWN_MODULE = _kind(
    "KY510", "unknown-module", "`packages: auto` finds no installed distribution for an imported module"
)
UNLISTED_IMPORT = _kind(
    "KY511", "unlisted-import", "a step imports a module its explicit packages do not provide", "warning"
)
UNUSED_PACKAGE = _kind("KY512", "unused-package", "a listed package no cell of its steps imports", "note")
FILE_OUTSIDE_FOLDER = _kind(
    "KY513", "file-outside-folder", "a `files:` path or local module that leaves the sidecar's folder"
)
UNREADABLE_SHIPPED = _kind(
    "KY514", "unreadable-shipped", "a `files:` entry or local module that cannot be read"
)
SHIPPED_TOO_LARGE = _kind(
    "KY515", "shipped-too-large", "a step's local modules and files are too large to carry in its code"
)

# -- KY6xx: cluster settings and volumes --------------------------------------------------------------------
ZERO_AMOUNT = _kind("KY601", "zero-amount", "a CPU, memory or storage amount that is not more than 0")
CPU_PRECISION = _kind("KY602", "cpu-precision", "a CPU amount finer than a millicore")
LIMIT_BELOW_REQUEST = _kind("KY603", "limit-below-request", "a resource limit below its request")
TIMEOUT_TOO_SHORT = _kind("KY604", "timeout-too-short", "a timeout under 1 second")
RESERVED_ENV = _kind("KY605", "reserved-env", "an environment variable named KALE_YAML_...")
ENV_SET_TWICE = _kind("KY606", "env-set-twice", "an environment variable set by `env:` and by `secrets:`")
TAINT_KEY = _kind("KY607", "taint-key", "a toleration key that is not a valid taint key")
BAD_TOLERATION = _kind("KY608", "bad-toleration", "a toleration whose keys Kubernetes would reject together")
DUPLICATE_VOLUME_NAME = _kind("KY610", "duplicate-volume-name", "two volumes with one name")
UNKNOWN_VOLUME = _kind("KY611", "unknown-volume", "a step or snapshot names no declared volume")
SHARED_MOUNT = _kind("KY612", "shared-mount", "two volumes mounted at one path")
DUPLICATE_SNAPSHOT = _kind("KY613", "duplicate-snapshot", "two snapshots of one volume at one moment")
SNAPSHOT_FOLDER_CLASH = _kind(
    "KY614", "snapshot-folder-clash", "a step named `after_run` beside an after_run snapshot"
)
MISSING_CLAIM_FOLDER = _kind(
    "KY620", "missing-claim-folder", "a local run lacks the folder of a `claim` volume"
)
MOUNT_NOT_FOLDER = _kind("KY621", "mount-not-folder", "a local run finds a file where a volume's folder goes")
CANNOT_MAKE_MOUNT = _kind("KY622", "cannot-make-mount", "a local run cannot make a `create` volume's folder")

# -- KY7xx: build -------------------------------------------------------------------------------------------
OUTPUT_REPLACES_INPUT = _kind(
    "KY701", "output-replaces-input", "an output would replace the notebook or sidecar"
)
OUTPUT_BLOCKED = _kind("KY702", "output-blocked", "an output cannot be written where it goes")
WRITE_FAILED = _kind("KY703", "write-failed", "writing the pipeline failed; nothing was written")
COMPILE_FAILED = _kind("KY704", "compile-failed", "kfp could not compile the generated pipeline")
STEP_TOO_LARGE = _kind(
    "KY705", "step-too-large", "a step's code is larger than KFP can pass its container in one argument"
)

# -- KY8xx: run and submit ----------------------------------------------------------------------------------
MISSING_PACKAGES = _kind("KY801", "missing-packages", "a local run lacks packages the steps import or list")
STEP_FAILED = _kind("KY802", "step-failed", "a cell raised an exception in a local run")
STEP_ENDED_EARLY = _kind("KY803", "step-ended-early", "a step's process ended before the step finished")
RUN_INTERRUPTED = _kind("KY804", "run-interrupted", "a local run stopped by a signal (Ctrl-C)")
SNAPSHOT_FAILED = _kind("KY805", "snapshot-failed", "a local run could not copy a volume's snapshot")
RUN_FAILED_EARLY = _kind("KY806", "run-failed-early", "a local run failed before any step's cells ran")
MISSING_OUTPUT = _kind("KY807", "missing-output", "a step kfp counted as done handed on no output")
STEP_NOT_STARTED = _kind("KY808", "step-not-started", "a local run could not start a step's process")
UNKNOWN_RUN_STEP = _kind("KY809", "unknown-run-step", "`run --from/--only` or `debug` names no step")
NO_EARLIER_RUN = _kind(
    "KY815", "no-earlier-run", "`run --from/--only` or `debug` needs values no earlier run produced"
)
BAD_HOST_URL = _kind("KY810", "bad-host-url", "`--host` (or KFP_HOST) is not a KFP server's URL")
TOKEN_FILE = _kind("KY811", "token-file", "KF_PIPELINES_SA_TOKEN_PATH names no readable file")
SERVER_PROBLEM = _kind("KY812", "server-problem", "the KFP server could not be reached, or refused a request")
WAIT_TIMEOUT = _kind("KY813", "wait-timeout", "`--wait` gave up before the run ended")
RUN_UNSUCCESSFUL = _kind("KY814", "run-unsuccessful", "a followed run ended without succeeding")

# -- KY9xx: authoring: init, import-kale, cells -------------------------------------------------------------
NOTEBOOK_IS_FOLDER = _kind("KY901", "notebook-is-folder", "init or import-kale was given a folder")
NOTEBOOK_NAMED_LIKE_SIDECAR = _kind(
    "KY902", "notebook-named-like-sidecar", "the notebook is named pipeline.kale.yaml"
)
SIDECAR_EXISTS = _kind("KY903", "sidecar-exists", "init or import-kale would overwrite a sidecar")
NO_NOTEBOOK_KEY = _kind(
    "KY904", "no-notebook-key", "`cells` cannot tell which notebook a broken sidecar names"
)
KALE_LEFT_OUT = _kind(
    "KY910", "kale-left-out", "a Kale tag or setting with no kale-yaml equivalent", "warning"
)
KALE_RENAMED = _kind("KY911", "kale-renamed", "a Kale name changed to fit kale-yaml's rules", "warning")
KALE_UNTAGGED = _kind(
    "KY912", "kale-untagged", "code before the first tagged cell, which Kale leaves out", "warning"
)
KALE_CELL_ORDER = _kind(
    "KY913", "kale-cell-order", "tagged cells in an order Kale runs differently", "warning"
)
KALE_UNKNOWN_PREV = _kind("KY914", "kale-unknown-prev", "a `prev:` tag naming no earlier step", "warning")
KALE_SEVERAL_NAMES = _kind("KY915", "kale-several-names", "a cell tagged with several step names", "warning")
KALE_METRICS = _kind(
    "KY916", "kale-metrics", "a pipeline-metrics cell kale-yaml reads differently", "warning"
)
KALE_NO_STEPS = _kind("KY917", "kale-no-steps", "no cell is tagged step:NAME", "warning")
KALE_DATA_EDGE = _kind(
    "KY918", "kale-data-edge", "a value passes between steps no prev: tag orders", "warning"
)
