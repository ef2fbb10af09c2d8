"""Choosing classes by config, without rewriting the data: `data.exclude_classes`, `data.class_map`, `data.classes`.

Applied to every listed file before any is read (folders: the class folder name; CSV manifests: the label cell):

1. `exclude_classes` — source classes (folder names / label cells) left out;
2. `class_map` — source class → class, e.g. five scan folders → `photo` / `not_photo` (unmapped ones keep their name);
3. `classes` — keep only these classes (named after the mapping).

A file left out is not lost: it becomes an `Excluded` row with its reason (`excluded_files.csv`, the summary's
`excluded` counts), and the accounting checks files seen = ingested + quarantined + excluded. A name in the
selection that no file carries is a configuration error naming it (`ClassSelectionError`). Multiclass and binary
only: a multilabel cell is a set of labels, not one class.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from components.example_gen import sources

EXCLUDED_REASON = "class {name!r} excluded by data.exclude_classes"
NOT_SELECTED_REASON = "class {name!r} not in data.classes"


class ClassSelectionError(sources.DataLayoutError):
    """The class selection names a class the data does not have; the message names the field and the class."""


@dataclass(frozen=True)
class ClassSelection:
    """Which classes to train on, as `data.classes`, `data.exclude_classes` and `data.class_map` say."""

    classes: tuple[str, ...] = ()  # keep only these (after the mapping); empty: all
    exclude: tuple[str, ...] = ()  # source classes left out
    class_map: Mapping[str, str] = field(default_factory=dict)  # source class -> class

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> ClassSelection:
        """The selection in an ingestion options dict (`classes`, `exclude_classes`, `class_map`)."""
        return cls(tuple(options.get("classes") or ()), tuple(options.get("exclude_classes") or ()),
                   dict(options.get("class_map") or {}))

    @property
    def active(self) -> bool:
        """True when the selection changes anything."""
        return bool(self.classes or self.exclude or self.class_map)

    def target(self, label: str) -> tuple[str, str | None]:
        """(class the file gets, reason it is left out or None) for a file whose source class is `label`."""
        if label in self.exclude:
            return label, EXCLUDED_REASON.format(name=label)
        mapped = self.class_map.get(label, label)
        if self.classes and mapped not in self.classes:
            return mapped, NOT_SELECTED_REASON.format(name=mapped)
        return mapped, None

    def check(self, labels: Iterable[str], where: str) -> None:
        """Raise `ClassSelectionError` for a name in the selection that none of the source `labels` gives."""
        present = sorted(set(labels) - {""})
        known = ", ".join(repr(name) for name in present)
        for name, names in (("data.exclude_classes", self.exclude), ("data.class_map", list(self.class_map))):
            missing = [n for n in names if n not in present]
            if missing:
                raise ClassSelectionError(f"config field {name} names {_names(missing)}, which {where} does not "
                                          f"have (its classes: {known})")
        mapped = sorted({self.class_map.get(label, label) for label in present if label not in self.exclude})
        missing = [n for n in self.classes if n not in mapped]
        if missing:
            raise ClassSelectionError(f"config field data.classes names {_names(missing)}, which {where} does not "
                                      f"have (its classes{' after data.class_map' if self.class_map else ''}: "
                                      f"{', '.join(repr(n) for n in mapped)})")

    def apply(self, found: Sequence[sources.Source], rejected: Sequence[sources.Rejected], where: str
              ) -> tuple[list[sources.Source], list[sources.Rejected], list[sources.Rejected]]:
        """(files kept with their class, listing rejects with their class, files left out with the reason);
        checks the selection against the classes of `found` and `rejected` first."""
        if not self.active:
            return list(found), list(rejected), []
        self.check([item.label for item in [*found, *rejected]], where)
        kept: list[sources.Source] = []
        refused: list[sources.Rejected] = []
        excluded: list[sources.Rejected] = []
        for item in [*found, *rejected]:
            if not item.label:  # no class (a stray file): nothing to select, it stays a listing reject
                refused.append(item)
                continue
            label, reason = self.target(item.label)
            if reason is not None:
                excluded.append(sources.Rejected(item.relative_path, item.label, item.split, reason))
            elif isinstance(item, sources.Source):
                kept.append(dataclasses.replace(item, label=label))
            else:
                refused.append(dataclasses.replace(item, label=label))
        return kept, refused, excluded


def _names(names: Sequence[str]) -> str:
    return ("class " if len(names) == 1 else "classes ") + ", ".join(repr(n) for n in names)
