"""What a run did and what a sidecar says, for people to look at: the executed notebook of a local run, its
run page (`report.html`), and the review page of `kale-yaml view`. Every page is one self-contained HTML file:
inline CSS, images as data: URIs, the DAG as inline SVG, no scripts and no network."""
