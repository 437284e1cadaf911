"""Reading a source: its offline store (Parquet), its online store, the record ids to ask for.

The id-source names live here (no pyspark import) because settings validate them.
"""

ID_SOURCES = ("auto", "offline", "scan")  # migration.id_source
IDS_FROM_OFFLINE = "offline store"  # record ids read from an offline store's Parquet
IDS_FROM_SCAN = "ListRecords"  # record ids listed by the online store
