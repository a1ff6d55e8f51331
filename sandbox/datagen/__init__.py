"""Synthetic demo data and analyst mock data, both driven by public manifests.

Two different products live here:

* ``generate`` writes the *demo "real" dataset* that stands in for an owner's
  data inside the domain: realistic, streamed to Parquet chunk by chunk so that
  tens of millions of rows never sit in memory, seeded and deterministic.
* ``generate_mock`` builds *mock data for analysts* from the manifest alone
  (uniform draws within public bounds and categories). It never reads data.

`layout` is the on-disk form of a dataset (Parquet parts, a completion marker, published by
rename), `columns` the draws both products share, `realistic` the generators of the two
demo datasets, `demo` and `mock` the two products.
"""
from sandbox.datagen.columns import arrow_schema, load_manifest
from sandbox.datagen.demo import GENERATOR_VERSION, GeneratedInfo, generate, generate_all
from sandbox.datagen.layout import COMPRESSION, MARKER, is_ready, publish_dir, read_marker
from sandbox.datagen.mock import generate_mock, mock_csv_bytes, write_mock_parquet

__all__ = ["COMPRESSION", "GENERATOR_VERSION", "MARKER", "GeneratedInfo", "arrow_schema", "generate",
           "generate_all", "generate_mock", "is_ready", "load_manifest", "mock_csv_bytes", "publish_dir",
           "read_marker", "write_mock_parquet"]
