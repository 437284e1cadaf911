"""Local Amazon SageMaker Feature Store emulator, laid out like a moto service.

Unmodified boto3 clients talk to it through ``endpoint_url``: both the ``sagemaker`` control
plane (JSON 1.1, ``X-Amz-Target: SageMaker.<Op>``) and ``sagemaker-featurestore-runtime``
(rest-json) point at the same URL. The offline store is written as Parquet under
``<data-dir>/<bucket>/<key>`` in the Glue layout the real service uses. Stdlib + pyarrow only;
it never imports the job (``fsmigrate``), so it checks the job independently.

    cli.py             the command: arguments, signals, flush timer, the ``ready`` line
    server.py          HTTP/1.1 transport (one send per response, TCP_NODELAY)
    urls.py            request -> operation
    responses.py       one function per operation: parse, call the backend, render
    admin.py           /_emulator/* (flush, stats, faults, reset, health)
    faults.py, stats.py  injected failures; counters
    models.py          the backend: every operation's semantics, batch ones included
    groups.py          feature group definitions, Create/Update validation, Describe views
    records.py         runtime input checks (values, event times, TargetStores, TTL)
    online.py          one group's online store (newest wins, TTL, ListRecords order)
    offline.py         buffered offline rows, flushed through offline_layout
    offline_layout.py  the Glue-format Parquet layout (shared with scripts/seed_data.py)
    exceptions.py, utils.py  errors; time and token helpers
"""
