"""The lake: a root URI under which every Delta table of a pipeline lives (``LAKE/<table>``), and the
catalogue of the tables whose shape the project fixes.

Tables are addressed by path, so the same code works on a laptop folder, ``s3://``, ``abfss://`` or
``dbfs:/`` without a metastore. :class:`Lake` is what jobs use:

    lake = Lake("./lake")
    df, version = lake.read("documents")          # pinned: the rows of that version, whoever appends
    lake.path("filtered"), lake.exists("deduped"), lake.version("documents")

Each table with a fixed schema is declared once in :data:`TABLES` (name → columns); jobs build their
DataFrames from :func:`schema` instead of writing the columns again. Tables whose columns follow their
input (``filtered`` keeps every column of ``documents`` and adds the pipeline's) are not declared.
"""

from __future__ import annotations

from dataclasses import dataclass

from lakesift.io import is_local, local_path

# name -> [(column, Spark SQL type, nullable)]: the one declaration of each fixed-shape table
TABLES: dict[str, list[tuple[str, str, bool]]] = {
    "documents": [
        ("doc_id", "string", False), ("url", "string", True), ("url_host", "string", True),
        ("crawl_date", "timestamp", True), ("source", "string", False), ("warc_path", "string", False),
        ("warc_record_id", "string", True), ("warc_record_index", "long", False), ("charset", "string", True),
        ("text", "string", False), ("language", "string", False), ("language_score", "double", False),
        ("extractor", "string", False), ("ingest_run_id", "string", False),
    ],
    "ingest_log": [
        ("run_id", "string", False), ("warc_path", "string", False), ("source", "string", False),
        ("status", "string", False), ("records_read", "long", False), ("documents_written", "long", False),
        ("skipped", "map<string,long>", False), ("languages", "map<string,long>", False),
        ("error", "string", True), ("extractor", "string", False), ("started_at", "timestamp", True),
        ("finished_at", "timestamp", True), ("seconds", "double", False),
    ],
    # per run and step of every stage (filter, dedup, …): documents / characters in and out, per reason
    "run_stats": [
        ("run_id", "string", True), ("pipeline", "string", True), ("step", "string", True),
        ("step_index", "int", True), ("reason", "string", True), ("docs_in", "long", True),
        ("docs_out", "long", True), ("docs_dropped", "long", True), ("chars_in", "long", True),
        ("chars_out", "long", True), ("language", "string", True),
    ],
    "dup_clusters": [
        ("doc_id", "string", True), ("cluster_id", "string", True), ("kept", "boolean", True),
        ("method", "string", True), ("run_id", "string", True),
    ],
    "datasets": [
        ("run_id", "string", True), ("name", "string", True), ("out", "string", True),
        ("tokenizer", "string", True), ("tokenizer_sha1", "string", True), ("seq_len", "int", True),
        ("dtype", "string", True), ("sequences", "long", True), ("tokens", "long", True), ("shards", "int", True),
        ("sources_json", "string", True), ("config_json", "string", True), ("created_at", "timestamp", True),
    ],
    # one row per domain of a dataset run (jobs/dataset, docs/domains.md): its counts and reference weight
    "domain_stats": [
        ("run_id", "string", True), ("name", "string", True), ("by", "string", True), ("domain", "string", True),
        ("folder", "string", True), ("validation_folder", "string", True), ("sources", "array<string>", True),
        ("documents", "long", True),
        ("tokens", "long", True), ("chunks", "long", True), ("sequences", "long", True),
        ("validation_sequences", "long", True), ("sequences_written", "long", True),
        ("tokens_written", "long", True), ("frequency", "double", True), ("reference_weight", "double", True),
        ("created_at", "timestamp", True),
    ],
    # post-training data (jobs/instruct.py import): conversations, preference pairs, and the rows refused
    "sft_examples": [
        ("id", "string", False), ("source", "string", True),
        ("messages", "array<struct<role:string,content:string>>", False), ("meta", "string", True),
        ("round", "int", True), ("run_id", "string", False),
    ],
    "preferences": [
        ("id", "string", False), ("source", "string", True),
        ("prompt", "array<struct<role:string,content:string>>", False),
        ("chosen", "array<struct<role:string,content:string>>", False),
        ("rejected", "array<struct<role:string,content:string>>", False), ("meta", "string", True),
        ("round", "int", True), ("chosen_score", "double", True), ("rejected_score", "double", True),
        ("scorer", "string", True), ("run_id", "string", False),
    ],
    # import: file and 1-based row of each refused input row; build (kind build-sft / build-dpo): the example's id
    "instruct_rejects": [
        ("run_id", "string", False), ("kind", "string", False), ("source", "string", True),
        ("file", "string", True), ("row", "long", True), ("id", "string", True), ("reason", "string", False),
        ("raw", "string", True),
    ],
    # one row per job run (jobs.common.runs): what ran, on which table versions, and how it ended
    "_runs": [
        ("run_id", "string", False), ("job", "string", False), ("status", "string", False),
        ("started_at", "timestamp", False), ("finished_at", "timestamp", False),
        ("config_json", "string", False), ("argv", "array<string>", False), ("summary_json", "string", False),
        ("versions_json", "string", False), ("error", "string", True),
        ("inputs", "array<struct<name:string,uri:string,version:long>>", True),
        ("outputs", "array<struct<name:string,uri:string,version:long>>", True),
    ],
}


def _type(name: str):
    from pyspark.sql import types as T

    simple = {"string": T.StringType(), "long": T.LongType(), "int": T.IntegerType(), "double": T.DoubleType(),
              "boolean": T.BooleanType(), "timestamp": T.TimestampType()}
    if name in simple:
        return simple[name]
    if name.startswith("map<"):
        k, v = name[4:-1].split(",")
        return T.MapType(_type(k), _type(v))
    if name.startswith("array<"):
        return T.ArrayType(_type(name[6:-1]))
    if name.startswith("struct<"):
        fields = [f.split(":") for f in name[7:-1].split(",")]
        return T.StructType([T.StructField(n, _type(t), True) for n, t in fields])
    raise ValueError(f"unknown column type {name!r}")


def schema(table: str):
    """The Spark schema of a catalogued table."""
    from pyspark.sql import types as T

    return T.StructType([T.StructField(c, _type(t), nullable) for c, t, nullable in TABLES[table]])


def lake_root(lake: str) -> str:
    """Normalise ``--lake``: local folders become absolute paths, URIs stay as given."""
    return local_path(lake) if is_local(lake) else lake.rstrip("/")


def table_exists(spark, path: str) -> bool:
    from delta.tables import DeltaTable

    try:
        return DeltaTable.isDeltaTable(spark, path)
    except Exception:
        return False


@dataclass(frozen=True)
class Lake:
    """The tables under one root; a table is named (``filtered`` → ``ROOT/filtered``) or given as a
    Delta path / URI (anything with ``/`` or ``:``)."""

    root: str

    def __post_init__(self):
        object.__setattr__(self, "root", lake_root(self.root))

    def path(self, table: str) -> str:
        return table if ("/" in table or ":" in table) else f"{self.root}/{table}"

    def exists(self, spark, table: str) -> bool:
        return table_exists(spark, self.path(table))

    def version(self, spark, table: str) -> int:
        """The table's current (latest committed) Delta version."""
        from delta.tables import DeltaTable

        return int(DeltaTable.forPath(spark, self.path(table)).history(1).select("version").first()[0])

    def read(self, spark, table: str, version: int | None = None):
        """``(DataFrame, version)``: the table as of ``version`` (default: the current one, looked up
        once). The read is pinned, so a writer appending meanwhile does not change what the job sees,
        and a run id naming the version tells the truth."""
        if version is None:
            version = self.version(spark, table)
        df = spark.read.format("delta").option("versionAsOf", int(version)).load(self.path(table))
        return df, int(version)

    def replace_run_rows(self, spark, df, table: str, run_id: str) -> None:
        """Write ``df`` (rows of one run) into ``table``, replacing that run's earlier rows and leaving
        other runs' rows alone; creates the table on first use."""
        path = self.path(table)
        if table_exists(spark, path):
            # mergeSchema: a table written before a column was added to its declaration gains it
            (df.write.format("delta").mode("overwrite").option("replaceWhere", f"run_id = '{run_id}'")
             .option("mergeSchema", "true").save(path))
        else:
            df.write.format("delta").mode("append").save(path)

    def overwrite(self, df, table: str) -> None:
        """Replace ``table`` (schema included) with ``df``."""
        df.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(self.path(table))

    def write_run_stats(self, spark, rows: list, run_id: str) -> None:
        """One run's rows of ``run_stats``; a row without the trailing (newer) columns gets nulls there."""
        width = len(TABLES["run_stats"])
        rows = [tuple(r) + (None,) * (width - len(r)) for r in rows]
        self.replace_run_rows(spark, spark.createDataFrame(rows, schema("run_stats")), "run_stats", run_id)
