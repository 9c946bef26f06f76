"""The README's configuration reference names every key of the config."""

import re
from pathlib import Path

import msgspec

from otelingest.config import Config, Section

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_config_key_is_documented():
    rows = [line for line in README.read_text().splitlines() if line.startswith("| `")]
    missing = []
    for f in msgspec.structs.fields(Config):
        if not (isinstance(f.type, type) and issubclass(f.type, Section)):
            if not any(f"`{f.name}`" in r for r in rows):
                missing.append(f.name)
            continue
        section_rows = [r for r in rows if f"`{f.name}." in r.split("|")[1]]
        for key in msgspec.structs.fields(f.type):
            # A row documents `section.key`, or `section.a` / `b` forms, or `section.x[_file]` forms.
            names = re.findall(r"[a-z_0-9]+(?:\[_[a-z]+\])?", " ".join(r.split("|")[1] for r in section_rows))
            expanded = {n.replace("[_file]", "") for n in names} | {n.replace("[", "").replace("]", "") for n in names}
            if key.name not in expanded:
                missing.append(f"{f.name}.{key.name}")
    assert not missing, f"README configuration table lacks: {', '.join(missing)}"
