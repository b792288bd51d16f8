"""Predictions kept as they are made (OUT/predictions.jsonl), so that an evaluation killed part-way — 2,500 clips
take an hour on two cores — resumes where it stopped and scores the same predictions as one run would have.

The first line holds the run's settings (model, data, decoding); each further line one batch of one system: its row
ids, its predictions and the seconds it took, so real-time factors add up across resumes. A half-written last line
(a kill mid-write) is ignored, and its batch made again.
"""

import collections
import json
import os


class PredictionLog:
    def __init__(self, path: str, settings: dict):
        self.path = path
        self.done: dict[tuple[str, str], str] = {}
        self.seconds: collections.Counter = collections.Counter()
        entries, clean = read_entries(path)
        if not clean:  # drop the half-written line, or everything appended after it would be unreadable
            with open(path, "w") as handle:
                handle.writelines(json.dumps(entry, ensure_ascii=False) + "\n" for entry in entries)
        if entries and entries[0].get("settings") != settings:
            raise ValueError(
                f"{path} holds predictions made with other settings ({entries[0].get('settings')}): give another "
                "--output_dir, or delete that file to start again"
            )
        if not entries:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            self.append({"settings": settings})
        for entry in entries[1:]:
            self.done.update({(entry["system"], row_id): text for row_id, text in zip(entry["ids"], entry["predictions"])})
            self.seconds[entry["system"]] += entry["seconds"]

    def missing(self, system: str, ids: list[str]) -> list[int]:
        """Positions of the ids that `system` has no prediction for yet."""
        return [index for index, row_id in enumerate(ids) if (system, row_id) not in self.done]

    def add(self, system: str, ids: list[str], predictions: list[str], seconds: float):
        self.append({"system": system, "ids": ids, "predictions": predictions, "seconds": seconds})
        self.done.update({(system, row_id): text for row_id, text in zip(ids, predictions)})
        self.seconds[system] += seconds

    def predictions(self, system: str, ids: list[str]) -> list[str]:
        return [self.done[(system, row_id)] for row_id in ids]

    def append(self, entry: dict):
        with open(self.path, "a") as handle:
            handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())


def read_entries(path: str) -> tuple[list[dict], bool]:
    """The file's entries, and whether every line was whole."""
    if not os.path.exists(path):
        return [], True
    entries = []
    with open(path) as handle:
        for line in handle:
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:  # the batch being written when the run was killed
                return entries, False
    return entries, True
