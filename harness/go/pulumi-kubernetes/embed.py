"""Write the two files the provider's main embeds, as its release build does (cmd/.../generate.go).

python embed.py <provider cmd dir> <version> <output dir>
"""

import json
import sys
from pathlib import Path

source, version, out = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
schema = json.loads((source / "schema.json").read_text())
schema["version"] = version
(out / "schema-embed.json").write_text(json.dumps(schema, separators=(",", ":")))
mapping = json.loads((source / "terraform-mapping.json").read_text())
(out / "terraform-mapping-embed.json").write_text(json.dumps(mapping, separators=(",", ":")))
