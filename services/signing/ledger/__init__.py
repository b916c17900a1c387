"""signing's tamper-evident audit ledger (issue 19): every audit event appended once to a hash-chained log, with
signed checkpoints (docs/architecture.md, "The audit ledger").

- chain.py: the hashes and the verification, pure;
- store.py: the collections, the consumer's handler, the single appender and its checkpoints, the reads
  (`entries_for(db, subject)`: the records about one account, for the citizen's data tracker);
- service.py: how the signing service runs it, and GET /v1/audit/checkpoints/latest;
- __main__.py: `python -m services.signing.ledger verify | export`.
"""
