"""Generate the example notebooks and the valid test-case notebooks.

Run from anywhere:  python examples/make_notebooks.py

Every notebook is nbformat 4.5 with fixed cell ids and no outputs, so re-running
this script rewrites identical files. The sidecars (pipeline.kale.yaml) are
written by hand and refer to cells by number, id, heading or regex: if you
reorder cells here, check the sidecar beside the notebook.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parent.parent


def _src(text: str) -> str:
    return textwrap.dedent(text).strip("\n")


def md(cell_id: str, text: str):
    return new_markdown_cell(_src(text), id=cell_id)


def code(cell_id: str, text: str):
    return new_code_cell(_src(text), id=cell_id)


def numbered(*cells: tuple[str, str]):
    """Cells given as ("md" | "code", source), with ids c01, c02, ... by position."""
    made = []
    for number, (kind, text) in enumerate(cells, start=1):
        make = md if kind == "md" else code
        made.append(make(f"c{number:02d}", text))
    return made


def write(relpath: str, cells) -> None:
    nb = new_notebook(cells=cells)
    nb.nbformat, nb.nbformat_minor = 4, 5
    nb.metadata = {
        "kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"},
        "language_info": {"name": "python"},
    }
    path = ROOT / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.validate(nb)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        nbformat.write(nb, f)
    print(f"wrote {relpath}")


# --------------------------------------------------------------------------- examples

WINE = [
    md("title", """
        # Wine classification

        Two classifiers on scikit-learn's wine data set: a logistic regression and a random forest.
        The better one by macro F1 wins.
    """),
    code("imports", """
        import matplotlib.pyplot as plt
        import pandas as pd
        from sklearn.datasets import load_wine
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import ConfusionMatrixDisplay, accuracy_score, f1_score
        from sklearn.model_selection import train_test_split
        from sklearn.preprocessing import StandardScaler
    """),
    code("parameters", """
        test_size = 0.25
        seed = 7
        n_estimators = 100
        C = 1.0
    """),
    md("load-data-heading", "## Load data"),
    code("load-data", """
        wine = load_wine()
        df = pd.DataFrame(wine.data, columns=wine.feature_names)
        df["target"] = wine.target
    """),
    code("quick-look", """
        print(df.shape)
        print(df["target"].value_counts().sort_index())
    """),
    code("scratch-describe", """
        # scratch
        print(df.describe())
    """),
    md("split-heading", "## Split"),
    code("split", """
        X = df.drop(columns="target")
        y = df["target"]
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, test_size=test_size, random_state=seed, stratify=y
        )
    """),
    code("scale", """
        scaler = StandardScaler().fit(X_train)
        X_train_s = scaler.transform(X_train)
        X_test_s = scaler.transform(X_test)
    """),
    md("logreg-heading", "## Logistic regression"),
    code("fit-logreg", """
        logreg = LogisticRegression(C=C, max_iter=1000, random_state=seed)
        logreg.fit(X_train_s, y_train)
    """),
    md("forest-heading", "## Random forest"),
    code("fit-forest", """
        forest = RandomForestClassifier(n_estimators=n_estimators, random_state=seed)
        forest.fit(X_train_s, y_train)
    """),
    md("evaluate-heading", "## Evaluate"),
    code("score-models", """
        scores = {}
        for name, model in [("logreg", logreg), ("forest", forest)]:
            pred = model.predict(X_test_s)
            scores[name] = {
                "accuracy": accuracy_score(y_test, pred),
                "f1": f1_score(y_test, pred, average="macro"),
            }
        pd.DataFrame(scores).T.round(3)
    """),
    code("pick-best", """
        best = max(scores, key=lambda name: scores[name]["f1"])
        accuracy = float(scores[best]["accuracy"])
        f1 = float(scores[best]["f1"])
        print(f"best: {best}  accuracy={accuracy:.3f}  f1={f1:.3f}")
    """),
    code("confusion-matrix", """
        best_model = {"logreg": logreg, "forest": forest}[best]
        ConfusionMatrixDisplay.from_predictions(
            y_test, best_model.predict(X_test_s), display_labels=["class 0", "class 1", "class 2"],
            cmap="Blues", colorbar=False,
        )
        plt.title(f"{best}: the test set's confusion matrix")
        plt.show()
    """),
]

# The Gettysburg Address (Abraham Lincoln, 1863; public domain).
TEXTSTATS = [
    md("title", """
        # Text statistics

        Word and sentence statistics over a short public-domain text, with the standard library only.
    """),
    code("imports", """
        import re
        import statistics
        from collections import Counter
        from dataclasses import dataclass
    """),
    code("parameters", """
        min_word_length = 3
        top_n = 10
    """),
    md("text-heading", "## Text"),
    code("text", '''
        TEXT = """
        Four score and seven years ago our fathers brought forth on this continent, a new nation,
        conceived in Liberty, and dedicated to the proposition that all men are created equal.

        Now we are engaged in a great civil war, testing whether that nation, or any nation so
        conceived and so dedicated, can long endure. We are met on a great battle-field of that war.
        We have come to dedicate a portion of that field, as a final resting place for those who here
        gave their lives that that nation might live. It is altogether fitting and proper that we
        should do this.

        But, in a larger sense, we can not dedicate -- we can not consecrate -- we can not hallow --
        this ground. The brave men, living and dead, who struggled here, have consecrated it, far
        above our poor power to add or detract. The world will little note, nor long remember what we
        say here, but it can never forget what they did here.
        """
    '''),
    md("tokenize-heading", "## Tokenize"),
    code("helpers", """
        @dataclass
        class WordStats:
            word: str
            count: int

            def line(self) -> str:
                return f"{self.word:<12} {self.count}"


        def tokenize(text: str, min_length: int = 1) -> list[str]:
            words = re.findall(r"[a-z']+", text.lower())
            return [w for w in words if len(w) >= min_length]


        def split_sentences(text: str) -> list[str]:
            return [s for s in re.split(r"(?<=[.!?])\\s+", text.strip()) if s]
    """),
    code("tokenize", """
        words = tokenize(TEXT, min_word_length)
        sentences = split_sentences(TEXT)
        summary = {"characters": len(TEXT), "words": len(words), "sentences": len(sentences)}
        summary
    """),
    md("top-words-heading", "## Top words"),
    code("top-words", """
        counts = Counter(words)
        top_words = [WordStats(word, count) for word, count in counts.most_common(top_n)]
        summary["vocabulary_size"] = len(counts)
    """),
    md("sentences-heading", "## Sentence lengths"),
    code("sentence-lengths", """
        sentence_lengths = [len(tokenize(sentence)) for sentence in sentences]
        longest_sentence = max(sentence_lengths)
    """),
    md("report-heading", "## Report"),
    code("report", """
        vocabulary_size = summary["vocabulary_size"]
        mean_sentence_length = round(statistics.mean(sentence_lengths), 2)
        summary["mean_sentence_length"] = mean_sentence_length
        summary["longest_sentence"] = longest_sentence
        summary["top_words"] = [ws.word for ws in top_words]
    """),
    code("print-report", """
        for key, value in summary.items():
            print(f"{key}: {value}")
        print()
        print("\\n".join(ws.line() for ws in top_words))
    """),
]

# --------------------------------------------------------------------------- valid cases

CASES = {
    "inplace_mutation": numbered(
        ("md", "# A list changed in place by a later step"),
        ("code", "xs = [1, 2]"),
        ("code", "xs.append(3)"),
        ("code", "total = sum(xs)"),
    ),
    "class_and_lambda": numbered(
        ("md", "# A class and a lambda defined in one step, used in later ones"),
        ("code", """
            factor = 3
            scale = lambda v: v * factor
        """),
        ("code", """
            class Counter:
                def __init__(self):
                    self.n = 0

                def add(self, k=1):
                    self.n += k
                    return self.n
        """),
        ("code", """
            counter = Counter()
            counter.add()
            counter.add(4)
            count = counter.n
            scaled = [scale(v) for v in range(3)]
        """),
        ("code", 'described = f"{type(counter).__name__}:{counter.add()}"'),
    ),
    "star_import_prelude": numbered(
        ("md", "# `from math import *` in the prelude"),
        ("code", "from math import *"),
        ("code", """
            r = 2
            area = round(pi * r ** 2, 4)
        """),
        ("code", """
            side = int(sqrt(144))
            hypotenuse = round(sqrt(side ** 2 + 5 ** 2))
        """),
    ),
    "global_in_function": numbered(
        ("md", "# A function that changes a global"),
        ("code", """
            count = 0


            def bump():
                global count
                count += 1
                return count
        """),
        ("code", """
            bump()
            last = bump()
        """),
        ("code", "final = count"),
    ),
    "packages_auto": numbered(
        ("md", "# Steps importing different libraries, a module and a package beside the notebook, a file"),
        ("code", "import json"),
        ("code", """
            import yaml

            config = yaml.safe_load("sizes: [3, 1, 2]")
            sizes = config["sizes"]
        """),
        ("code", """
            from jinja2 import Template

            line = Template("{{ n }} items").render(n=len(sizes))
        """),
        ("code", """
            import helpers
            from textkit.words import shout

            with open("labels.txt", encoding="utf-8") as handle:
                labels = handle.read().split()
            total = helpers.total(sizes)
            loud = shout(labels[0])
            box = helpers.Box(total)
        """),
        ("code", """
            try:
                import surely_not_installed_kale_module
            except ImportError:
                surely_not_installed_kale_module = None


            def mean_of(values):
                import numpy

                return float(numpy.mean(values))


            mean = mean_of(sizes)
            summary = json.dumps({"mean": mean, "box": box.value})
        """),
    ),
    "time_magic": numbered(
        ("md", "# IPython magics: line magics are left out, `%%time` runs its body"),
        ("code", """
            %load_ext autoreload
            %autoreload 2
            values = [3, 1, 2]
        """),
        ("code", """
            %%time
            ordered = sorted(values)
            smallest = ordered[0]
        """),
        ("code", 'joined = ",".join(str(v) for v in ordered)'),
    ),
    "independent_branches": numbered(
        ("md", "# Two branches that both read `data`, joined at the end"),
        ("code", "data = [4, 8, 15, 16, 23, 42]"),
        ("code", "total = sum(data)"),
        ("code", "largest = max(data)"),
        ("code", """
            joined = [total, largest]
            share = f"{largest}/{total}"
        """),
    ),
    "parameter_override": numbered(
        ("md", "# Parameters from a cell, plus one that only the sidecar declares"),
        ("code", """
            n = 3
            label = "x"
        """),
        ("code", "result = [label] * n"),
        ("code", 'padded = result + ["-"] * extra'),
    ),
    "selectors_mix": numbered(
        ("code", "a = 1"),
        ("code", "b = a + 1"),
        ("code", """
            # scratch
            print("b =", b)
        """),
        ("md", "## Middle"),
        ("code", "c = b * 10"),
        ("md", "## End"),
        ("code", "d = c + 1"),
        ("code", "e = d * 2"),
        ("code", "values = [a, b, c, d, e]"),
        ("code", "total = sum(values)"),
        ("code", 'summary = f"{len(values)} values, total {total}"'),
        ("code", "size = len(summary)"),
    ),
    "explicit_io": numbered(
        ("md", "# A variable defined where static analysis cannot see it"),
        ("code", """
            globals()["hidden"] = 5
            visible = 1
        """),
        ("code", "doubled = hidden * 2"),
        ("code", 'message = f"{visible}+{doubled}"'),
    ),
    "after_edge": numbered(
        ("md", "# Two steps without data flow, ordered by `after:`"),
        ("code", 'first_value = "one"'),
        ("code", 'second_value = "two"'),
    ),
}


def main() -> None:
    write("examples/wine/wine.ipynb", WINE)
    write("examples/textstats/textstats.ipynb", TEXTSTATS)
    for name, cells in CASES.items():
        write(f"tests/cases/valid/{name}/nb.ipynb", cells)


if __name__ == "__main__":
    main()
