"""Reading a source: its offline store (Parquet), its online store, the record ids to ask for.

The id-source names live here (no pyspark import) because settings validate them.
"""

ID_SOURCES = ("auto", "offline", "scan")  # migration.id_source
IDS_FROM_OFFLINE = "offline store"  # record ids read from an offline store's Parquet
IDS_FROM_SCAN = "ListRecords"  # record ids listed by the online store
IDS_FROM_BOTH = "offline store + ListRecords"  # the union: the default when both are there
# What the offline id source can't see (said in the plan whenever it is used alone).
OFFLINE_IDS_MISS = ("may miss records written online only (TargetStores=[OnlineStore]) and "
                    "records written within the offline store's delivery delay (~15 min)")
