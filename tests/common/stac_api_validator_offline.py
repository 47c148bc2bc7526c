"""Run stac-api-validator without network access (tests/serve_validator.rs).

The validator downloads JSON schemas while it validates, and this machine has no internet.
This wrapper maps the schema URLs to local copies before running the validator's CLI:

* STAC core schemas (item, collection, catalog and the item-spec parts they reference) are the
  v1.1.0 copies pystac ships in its package data. They answer for both the v1.0.0 and the
  v1.1.0 URLs, with the `stac_version` constant relaxed to accept "1.0.0" (the stored items are
  STAC 1.0.0; the 1.0.0 and 1.1.0 core schemas agree on every member these items use).
* GeoJSON Feature/Geometry schemas: pystac's copies.
* Extension schemas (projection, sat, version, alternate-assets, ...) are not available here:
  every STAC object is validated against the core schemas only (stac-validator's `core` mode,
  which also skips opening link and asset URLs). Any other remote URL fails loudly.

Usage: python3 stac_api_validator_offline.py <stac-api-validator arguments>
"""

import copy
import json
import sys
from importlib import resources

import stac_validator.utilities as su
import stac_validator.validate as sv

ROOT = resources.files("pystac.validation.jsonschemas")


def _read(*parts):
    node = ROOT
    for p in parts:
        node = node / p
    return json.loads(node.read_text())


def _relax_version(node):
    if isinstance(node, dict):
        sv_ = node.get("properties", {}).get("stac_version")
        if isinstance(sv_, dict) and sv_.get("const") == "1.1.0":
            sv_.pop("const")
            sv_["enum"] = ["1.0.0", "1.1.0"]
        for v in node.values():
            _relax_version(v)
    elif isinstance(node, list):
        for v in node:
            _relax_version(v)
    return node


LOCAL = {}
for ver in ("v1.0.0", "v1.1.0"):
    for name in (
        "item", "basics", "datetime", "instrument", "licensing", "provider", "common",
        "bands", "data-values",
    ):
        doc = _relax_version(_read("stac-spec", "v1.1.0", f"{name}.json"))
        LOCAL[f"https://schemas.stacspec.org/{ver}/item-spec/json-schema/{name}.json"] = doc
    for spec in ("catalog", "collection"):
        doc = _relax_version(_read("stac-spec", "v1.1.0", f"{spec}.json"))
        LOCAL[f"https://schemas.stacspec.org/{ver}/{spec}-spec/json-schema/{spec}.json"] = doc
for name in ("Feature", "Geometry"):
    LOCAL[f"https://geojson.org/schema/{name}.json"] = _read("geojson", f"{name}.json")
# common.json's $id lacks its dot in v1.1.0 ("commonjson"); answer that spelling too.
LOCAL["https://schemas.stacspec.org/v1.1.0/item-spec/json-schema/commonjson"] = LOCAL[
    "https://schemas.stacspec.org/v1.1.0/item-spec/json-schema/common.json"
]

_original_fetch = su.fetch_and_parse_file


def _fetch(input_path, headers=None):
    key = input_path.split("#")[0]
    if key in LOCAL:
        return copy.deepcopy(LOCAL[key])
    if key.startswith("http://127.0.0.1") or key.startswith("http://localhost"):
        return _original_fetch(input_path, headers)
    if key.startswith("http://") or key.startswith("https://"):
        raise ValueError(f"offline: no local copy of {input_path}")
    return _original_fetch(input_path, headers)


su.fetch_and_parse_file = _fetch

_original_init = sv.StacValidate.__init__


def _core_only(self, *args, **kwargs):
    _original_init(self, *args, **kwargs)
    self.core = True


sv.StacValidate.__init__ = _core_only

if __name__ == "__main__":
    from stac_api_validator.__main__ import main

    sys.exit(main(args=sys.argv[1:], prog_name="stac-api-validator"))
